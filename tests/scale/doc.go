// Package scale tests many networks and containers on one controller in a
// real namespace.
package scale
