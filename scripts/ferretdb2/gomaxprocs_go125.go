// Added by scripts/documentdb.sh to FerretDB v2.5.0's cmd/ferretdb before it is built.
//
// The release defines setGOMAXPROCS only for Go < 1.25 (gomaxprocs.go, tagged !go1.25, uses
// automaxprocs), so the package does not compile with a newer Go. From Go 1.25 on the runtime
// honours cgroup CPU limits itself, so there is nothing left to do.

//go:build go1.25

package main

import "log/slog"

func setGOMAXPROCS(*slog.Logger) {}
