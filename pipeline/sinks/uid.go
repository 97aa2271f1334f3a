package sinks

import "github.com/bulkhead-sec/bulkhead/pipeline/detection"

// FindingUID is the finding's stable id, the OCSF finding_info.uid: the
// same for the same finding on the same events, so an exporter can give it
// as a message id and a redelivery is deduplicated downstream.
func FindingUID(f *detection.Finding) string { return findingUID(f) }
