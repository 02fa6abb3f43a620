// Package crash kills a controller's child process at random points and
// checks that the next start finds the kernel, store and files consistent,
// and that killed children leave no processes or directories behind.
package crash
