// Package archtest holds tests of the module's import graph, no code: the
// layers below plugins/ (pipeline/ and backends/) must not import
// plugins/, cmd/ or test/, on any platform they build for. The detector
// contract they share lives in pipeline/detection for that reason; the
// SDK (plugins/sdk/detect) re-exports it for plugin authors.
//
// Only non-test imports count: a test under backends/ may drive a library
// detector from plugins/, as the monitor's binary does, without making the
// package it tests depend on it.
package archtest
