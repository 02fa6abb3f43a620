// Package options provides the untyped option map used at the API boundary
// and the one place that turns it into a typed struct.
package options

import (
	"fmt"
	"reflect"
)

// Generic is a map of option names to values.
type Generic map[string]any

// NewGeneric returns an empty Generic.
func NewGeneric() Generic { return Generic{} }

// NoSuchFieldError: the model has no field named Field.
type NoSuchFieldError struct{ Field, Type string }

func (e NoSuchFieldError) Error() string {
	return fmt.Sprintf("no field %q in type %q", e.Field, e.Type)
}

// CannotSetFieldError: the field exists but is not settable (unexported).
type CannotSetFieldError struct{ Field, Type string }

func (e CannotSetFieldError) Error() string {
	return fmt.Sprintf("cannot set field %q of type %q", e.Field, e.Type)
}

// TypeMismatchError: the option's value has another type than the field.
type TypeMismatchError struct{ Field, ExpectType, ActualType string }

func (e TypeMismatchError) Error() string {
	return fmt.Sprintf("type mismatch, field %s require type %v, actual type %v", e.Field, e.ExpectType, e.ActualType)
}

// BadRequest marks the three errors above as invalid input.
func (NoSuchFieldError) BadRequest()    {}
func (CannotSetFieldError) BadRequest() {}
func (TypeMismatchError) BadRequest()   {}

// GenerateFromModel returns a new value of model's struct type with each
// exported field named by a key of opts set to that key's value. Types must
// match exactly. The result is a pointer iff model is a pointer.
func GenerateFromModel(opts Generic, model any) (any, error) {
	modType := reflect.TypeOf(model)
	if modType == nil {
		return nil, fmt.Errorf("nil model")
	}
	isPtr := modType.Kind() == reflect.Ptr
	if isPtr {
		modType = modType.Elem()
	}
	if modType.Kind() != reflect.Struct {
		return nil, fmt.Errorf("model must be a struct or a pointer to one, not %s", modType)
	}
	res := reflect.New(modType)
	for name, value := range opts {
		field := res.Elem().FieldByName(name)
		if !field.IsValid() {
			return nil, NoSuchFieldError{name, modType.String()}
		}
		if !field.CanSet() {
			return nil, CannotSetFieldError{name, modType.String()}
		}
		v := reflect.ValueOf(value)
		if !v.IsValid() || v.Type() != field.Type() {
			actual := "nil"
			if v.IsValid() {
				actual = v.Type().String()
			}
			return nil, TypeMismatchError{name, field.Type().String(), actual}
		}
		field.Set(v)
	}
	if isPtr {
		return res.Interface(), nil
	}
	return res.Elem().Interface(), nil
}
