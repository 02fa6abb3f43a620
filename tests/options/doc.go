// Package options walks every label and option the library defines and
// proves each is read, and tests address and driver options end to end.
package options
