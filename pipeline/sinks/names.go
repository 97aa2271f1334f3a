package sinks

import (
	"strconv"

	"golang.org/x/sys/unix"
)

var openFlagNames = []struct {
	flag uint64
	name string
}{
	{unix.O_CREAT, "O_CREAT"}, {unix.O_EXCL, "O_EXCL"}, {unix.O_NOCTTY, "O_NOCTTY"},
	{unix.O_TRUNC, "O_TRUNC"}, {unix.O_APPEND, "O_APPEND"}, {unix.O_NONBLOCK, "O_NONBLOCK"},
	{unix.O_DSYNC, "O_DSYNC"}, {unix.O_DIRECT, "O_DIRECT"}, {unix.O_LARGEFILE, "O_LARGEFILE"},
	{unix.O_DIRECTORY, "O_DIRECTORY"}, {unix.O_NOFOLLOW, "O_NOFOLLOW"}, {unix.O_NOATIME, "O_NOATIME"},
	{unix.O_CLOEXEC, "O_CLOEXEC"}, {unix.O_PATH, "O_PATH"},
	// O_TMPFILE includes O_DIRECTORY; __O_TMPFILE is the distinguishing bit.
	{unix.O_TMPFILE &^ unix.O_DIRECTORY, "O_TMPFILE"},
	// O_SYNC includes O_DSYNC; __O_SYNC is the distinguishing bit.
	{unix.O_SYNC &^ unix.O_DSYNC, "O_SYNC"},
}

// AppendOpenFlags writes open(2) flags as "O_WRONLY|O_CREAT|O_TRUNC".
func AppendOpenFlags(b []byte, flags uint64) []byte {
	switch flags & unix.O_ACCMODE {
	case unix.O_RDONLY:
		b = append(b, "O_RDONLY"...)
	case unix.O_WRONLY:
		b = append(b, "O_WRONLY"...)
	case unix.O_RDWR:
		b = append(b, "O_RDWR"...)
	default:
		b = append(b, "O_ACCMODE3"...)
	}
	for _, f := range openFlagNames {
		if flags&f.flag != 0 {
			b = append(b, '|')
			b = append(b, f.name...)
		}
	}
	return b
}

// PtraceRequestName names the ptrace requests bulkhead captures.
func PtraceRequestName(req int64) string {
	switch req {
	case unix.PTRACE_ATTACH:
		return "PTRACE_ATTACH"
	case unix.PTRACE_SEIZE:
		return "PTRACE_SEIZE"
	case unix.PTRACE_POKETEXT:
		return "PTRACE_POKETEXT"
	case unix.PTRACE_POKEDATA:
		return "PTRACE_POKEDATA"
	case unix.PTRACE_POKEUSR:
		return "PTRACE_POKEUSR"
	}
	return "request " + strconv.FormatInt(req, 10)
}
