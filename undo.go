package libnetwork

// undoStack collects the inverse of each step of a multi-step operation.
// The operation defers run() guarded by its success flag, so a failure at
// any step unwinds everything done before it, newest first.
type undoStack []func()

func (u *undoStack) push(f func()) { *u = append(*u, f) }

func (u *undoStack) run() {
	for i := len(*u) - 1; i >= 0; i-- {
		(*u)[i]()
	}
	*u = nil
}
