package wire

// Regenerate with `make generate` (needs protoc from Debian's protobuf-compiler).
//go:generate protoc --plugin=protoc-gen-go=../../../.tools/protoc-gen-go --plugin=protoc-gen-go-grpc=../../../.tools/protoc-gen-go-grpc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative detector.proto
