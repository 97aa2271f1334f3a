// Command threadcreds changes credentials the way real programs do, on one
// thread or on all of them, while its other threads go on acting with the
// credentials they kept. Credentials are per thread in the kernel, so none
// of this is a process gaining root without a setid call: a monitor must
// not report it as one. It must be run as root; each step that acts makes
// a memfd named after itself, which the monitor sees with the acting
// thread's credentials, and runs /bin/true from the acting thread.
//
// Steps, in order, each from its own OS thread where it says so:
//
//	impersonate: one thread drops its effective uid to nobody with the raw
//	  setresuid syscall (as C's syscall(SYS_setresuid) or a Go server
//	  impersonating a user on a locked thread does), acts, and lets another
//	  thread, still root, act; then it takes euid 0 back and acts.
//	drop: one thread drops every uid to nobody for good with the raw
//	  setuid syscall (C's syscall(SYS_setuid, …), not glibc's all-thread
//	  setuid), acts, and ends; the main thread, still root, acts.
//	allthreads: Go's syscall.Setresuid drops the effective uid of every
//	  thread (allthreadsyscall), threads act, and it takes euid 0 back.
//	gid: Go's syscall.Setgid moves every thread's gids to nogroup and back;
//	  the uids never change (a group change is not a user change).
//	morethreads: more threads, some the process had not used before, act
//	  as root.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

const nobody = 65534

// act makes the step's memfd and runs /bin/true, from the calling thread.
func act(step string) {
	fd, err := unix.MemfdCreate("threadcreds-"+step, 0)
	if err != nil {
		fail("%s: memfd_create: %v", step, err)
	}
	unix.Close(fd)
	if err := exec.Command("/bin/true").Run(); err != nil {
		fail("%s: /bin/true: %v", step, err)
	}
}

// setresuid changes the calling thread's uids only (-1 keeps one).
func setresuid(r, e, s int) {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_SETRESUID, uintptr(r), uintptr(e), uintptr(s)); errno != 0 {
		fail("setresuid(%d, %d, %d): %v", r, e, s, errno)
	}
}

// euid is the calling thread's effective uid, from the kernel (the libc
// and Go wrappers read it per thread too, but say so explicitly).
func euid() int {
	e, _, _ := syscall.RawSyscall(syscall.SYS_GETEUID, 0, 0, 0)
	return int(e)
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "threadcreds: "+format+"\n", a...)
	os.Exit(1)
}

// onThread runs f on a goroutine locked to its own OS thread and waits.
// With keep false the thread ends with the goroutine (Go retires a thread
// still locked at goroutine exit), so changed credentials die with it.
func onThread(keep bool, f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if keep {
			defer runtime.UnlockOSThread()
		}
		f()
	}()
	<-done
}

func main() {
	if os.Geteuid() != 0 {
		fail("run me as root")
	}
	runtime.LockOSThread() // the main goroutine keeps the main thread: the "other" thread
	act("start")

	// impersonate
	dropped, resume, back := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		setresuid(-1, nobody, -1)
		if euid() != nobody {
			fail("impersonate: euid %d", euid())
		}
		act("impersonate-nobody")
		close(dropped)
		<-resume
		setresuid(-1, 0, -1)
		act("impersonate-root-again")
		close(back)
	}()
	<-dropped
	if euid() != 0 {
		fail("impersonate: the main thread's euid changed with another thread's: %d", euid())
	}
	act("impersonate-other-thread-root")
	close(resume)
	<-back

	// drop
	onThread(false, func() {
		if _, _, errno := syscall.RawSyscall(syscall.SYS_SETUID, nobody, 0, 0); errno != 0 {
			fail("drop: setuid: %v", errno)
		}
		act("drop-nobody")
	})
	act("drop-other-thread-root")

	// allthreads
	if err := syscall.Setresuid(-1, nobody, -1); err != nil {
		fail("allthreads: %v", err)
	}
	if euid() != nobody {
		fail("allthreads: the main thread's euid is %d", euid())
	}
	act("allthreads-nobody")
	onThread(true, func() { act("allthreads-nobody-thread") })
	if err := syscall.Setresuid(-1, 0, -1); err != nil {
		fail("allthreads back: %v", err)
	}
	act("allthreads-root-again")

	// gid
	if err := syscall.Setgid(nobody); err != nil {
		fail("gid: %v", err)
	}
	act("gid-dropped")
	if err := syscall.Setgid(0); err != nil {
		fail("gid back: %v", err)
	}
	act("gid-restored")

	// morethreads: goroutines locked to threads make the runtime start
	// more; each acts as root.
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			act(fmt.Sprint("morethreads-", i))
		}()
	}
	wg.Wait()
	fmt.Println("ok")
}
