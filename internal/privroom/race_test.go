//go:build race

package privroom

const raceEnabled = true
