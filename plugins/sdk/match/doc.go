// Package match holds what detectors share to decide whether an event is
// interesting: glob patterns over paths, allowlists of processes an
// operator trusts (by binary, command name, ancestor or arguments), and
// Files, which recognises watched files under any name (kernel path,
// identity, or the path as passed).
//
// Patterns are deliberately simple: '*' matches any run of characters,
// '/' included, and '?' any one character. A pattern without '/' that is
// matched against a path matches the path's last element, so "sshd"
// matches "/usr/sbin/sshd".
package match
