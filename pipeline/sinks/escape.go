package sinks

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Everything a monitored process or a plugin controls (paths, argv, comm,
// names, a finding's summary and fields) is arbitrary bytes: newlines,
// terminal escape sequences, bytes that are not UTF-8. The encoders here
// make sure none of it can forge a record or reach a terminal raw.
//
// JSON: a string is escaped so that every output line is one valid JSON
// object made of printable characters only: C0 controls and DEL as \u00XX
// (\n, \r, \t short), and every character Unicode does not call printable
// (C1 controls such as U+009B, bidirectional overrides, U+2028 …) as \uXXXX
// — all decode back to the same characters. A byte that is not valid UTF-8
// cannot be written in JSON: it becomes U+FFFD, and the field then has a
// sibling "<name>_b64" with the original bytes in standard base64 (for an
// array, "<name>_b64" is an array of the same length).
//
// Text: a value is written as it is when it is plain (printable, no space,
// quote or backslash); otherwise it is Go-quoted (strconv.Quote: \n, \x1b,
// \xff, \u009b …), which strconv.Unquote reverses exactly. Free text (a
// finding's summary) is escaped the same way without the quotes.

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string (see above); invalid bytes
// become U+FFFD.
func appendString(b []byte, s string) []byte {
	b, _ = appendJSONString(b, s)
	return b
}

// appendJSONString writes s as a JSON string and reports whether bytes
// that are not UTF-8 were replaced.
func appendJSONString(b []byte, s string) ([]byte, bool) {
	lossy := false
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
			lossy = true
		case !unicode.IsPrint(r):
			b = appendUnicodeEscape(b, r)
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"'), lossy
}

// appendUnicodeEscape writes r as \uXXXX, or a surrogate pair of them.
func appendUnicodeEscape(b []byte, r rune) []byte {
	if r > 0xffff {
		r1, r2 := utf16.EncodeRune(r)
		return appendUnicodeEscape(appendUnicodeEscape(b, r1), r2)
	}
	return append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// appendField writes "name":"s", and "name_b64" with s's bytes when s is
// not valid UTF-8.
func appendField(b []byte, name, s string) []byte {
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	b, lossy := appendJSONString(b, s)
	if lossy {
		b = appendB64Field(b, name, s)
	}
	return b
}

func appendB64Field(b []byte, name, s string) []byte {
	b = append(b, `,"`...)
	b = append(b, name...)
	b = append(b, `_b64":"`...)
	b = base64.StdEncoding.AppendEncode(b, []byte(s))
	return append(b, '"')
}

// appendArgsField writes NUL-separated argv as "name":[…], and "name_b64"
// with every argument's bytes when one is not valid UTF-8.
func appendArgsField(b []byte, name, args string) []byte {
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	lossy := false
	b = append(b, '[')
	for i, a := range splitArgs(args) {
		if i > 0 {
			b = append(b, ',')
		}
		var l bool
		b, l = appendJSONString(b, a)
		lossy = lossy || l
	}
	b = append(b, ']')
	if !lossy {
		return b
	}
	b = append(b, `,"`...)
	b = append(b, name...)
	b = append(b, `_b64":[`...)
	for i, a := range splitArgs(args) {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, []byte(a))
		b = append(b, '"')
	}
	return append(b, ']')
}

// splitArgs iterates over NUL-separated argv; a trailing NUL ends the last
// argument and starts none.
func splitArgs(args string) func(yield func(int, string) bool) {
	return func(yield func(int, string) bool) {
		for i := 0; len(args) > 0; i++ {
			end := 0
			for end < len(args) && args[end] != 0 {
				end++
			}
			if !yield(i, args[:end]) || end == len(args) {
				return
			}
			args = args[end+1:]
		}
	}
}

// maxValueDepth bounds how deeply a finding's fields nest.
const maxValueDepth = 32

// appendJSONValue writes a finding field's value: strings as above,
// objects with sorted keys and a "<key>_b64" sibling for a string value
// that is not UTF-8, anything else through encoding/json with its
// non-printable characters escaped. Values nested deeper than
// maxValueDepth, or that encoding/json refuses, are written as null.
func appendJSONValue(b []byte, v any, depth int) []byte {
	if depth > maxValueDepth {
		return append(b, "null"...)
	}
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return appendString(b, x)
	case bool:
		return strconv.AppendBool(b, x)
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONValue(b, e, depth+1)
		}
		return append(b, ']')
	case []string:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, e)
		}
		return append(b, ']')
	case map[string]any:
		return appendJSONObject(b, x, depth)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return append(b, "null"...)
	}
	return AppendSanitizedJSON(b, raw)
}

func appendJSONObject(b []byte, m map[string]any, depth int) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		s, isString := m[k].(string)
		if !isString {
			b = appendJSONValue(b, m[k], depth+1)
			continue
		}
		var lossy bool
		b, lossy = appendJSONString(b, s)
		if _, taken := m[k+"_b64"]; lossy && !taken {
			b = append(b, ',')
			b = appendString(b, k+"_b64")
			b = append(b, ':', '"')
			b = base64.StdEncoding.AppendEncode(b, []byte(s))
			b = append(b, '"')
		}
	}
	return append(b, '}')
}

// AppendSanitizedJSON appends valid JSON (as encoding/json writes it: UTF-8,
// controls escaped) to b, escaping what encoding/json leaves raw: DEL and
// the characters that are not printable. Both can only be inside strings.
func AppendSanitizedJSON(b, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c < utf8.RuneSelf {
			if c == 0x7f {
				b = append(b, `\u007f`...)
			} else {
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(raw[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case !unicode.IsPrint(r):
			b = appendUnicodeEscape(b, r)
		default:
			b = append(b, raw[i:i+size]...)
		}
		i += size
	}
	return b
}

// appendTextValue writes s for the text format: as it is when it is plain,
// Go-quoted otherwise.
func appendTextValue(b []byte, s string) []byte {
	if plainText(s) {
		return append(b, s...)
	}
	return strconv.AppendQuote(b, s)
}

// plainText reports whether s can be written unquoted: not empty, and only
// printable characters other than space, quote and backslash.
func plainText(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == '"' || c == '\\' || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || !unicode.IsPrint(r) {
			return false
		}
		i += size
	}
	return true
}

// appendTextEscaped writes free text with the escapes of strconv.Quote
// (\n, \a, \x1b, \xff, \u009b …) but neither the quotes nor an escaped
// quote: no control character, invalid byte or non-printable character is
// written raw.
func appendTextEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '\\':
				b = append(b, '\\', '\\')
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\a':
				b = append(b, '\\', 'a')
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c == '\v':
				b = append(b, '\\', 'v')
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
		case !unicode.IsPrint(r):
			q := strconv.QuoteRune(r) // '\u009b'
			b = append(b, q[1:len(q)-1]...)
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}

// TextEscape is s as the text format writes free text: safe to print on a
// terminal, one line, every control character and invalid byte escaped.
func TextEscape(s string) string { return string(appendTextEscaped(nil, s)) }
