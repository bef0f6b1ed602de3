// Command ferretdb-launcher runs FerretDB v1 (embedded SQLite backend) for local development
// and CI of the enterprise service. It is built and started by scripts/stack.sh.
//
// It listens on a loopback address only and stops cleanly on SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listenAddr := flag.String("listen-addr", "127.0.0.1:27018", "TCP address to listen on (loopback only)")
	dataDir := flag.String("data-dir", "", "directory for the SQLite databases (required)")
	logLevel := flag.String("log-level", "info", "log level: debug, info, warn or error")
	shutdownTimeout := flag.Duration("shutdown-timeout", 3*time.Second,
		"after SIGTERM/SIGINT, how long open client connections may keep the process alive")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fatal(fmt.Errorf("invalid -log-level %q: %w", *logLevel, err))
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)

	if err := checkLoopback(*listenAddr); err != nil {
		fatal(err)
	}

	sqliteURL, err := prepareDataDir(*dataDir)
	if err != nil {
		fatal(err)
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listenAddr},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	if err != nil {
		fatal(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// Printed whatever the log level, so the log always shows where each run starts and ends.
	fmt.Fprintf(os.Stderr, "ferretdb-launcher: pid %d serving mongodb://%s/ from %s\n", os.Getpid(), *listenAddr, sqliteURL)

	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	select {
	case err := <-done:
		if err != nil {
			fatal(err)
		}
	case <-ctx.Done():
		// FerretDB lets connected clients finish for a few seconds; driver pools keep idle
		// connections open, so without a bound every stop would take that long. Committed
		// data is safe in SQLite either way. A second signal exits at once.
		stop()
		select {
		case err := <-done:
			if err != nil {
				fatal(err)
			}
		case <-time.After(*shutdownTimeout):
			fmt.Fprintf(os.Stderr, "ferretdb-launcher: pid %d: clients still connected after %s, exiting\n", os.Getpid(), *shutdownTimeout)
		}
	}

	fmt.Fprintf(os.Stderr, "ferretdb-launcher: pid %d stopped\n", os.Getpid())
}

// checkLoopback refuses any listen address whose host is not a loopback address.
func checkLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("invalid -listen-addr %q: %w", addr, err)
	}
	if port == "" {
		return fmt.Errorf("invalid -listen-addr %q: missing port", addr)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing -listen-addr %q: host must be a loopback address such as 127.0.0.1", addr)
	}
	return nil
}

// prepareDataDir creates the data directory and returns the SQLite URI FerretDB expects
// (a "file:" URI naming a directory, with a trailing slash).
func prepareDataDir(dir string) (string, error) {
	if dir == "" {
		return "", errors.New("-data-dir is required")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("invalid -data-dir %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return "", fmt.Errorf("cannot create -data-dir %q: %w", abs, err)
	}
	u := url.URL{Scheme: "file", Path: abs + "/"}
	return u.String(), nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "ferretdb-launcher:", err)
	os.Exit(1)
}
