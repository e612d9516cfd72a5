// Command s3 is an in-memory S3 server (gofakes3) for backup-gate's
// integration tests. It listens on loopback (port 0 = random), creates the
// given buckets, prints one JSON line {"url":"http://127.0.0.1:PORT"} on
// stdout and serves until SIGTERM/SIGINT or, with -stop-on-stdin-eof, until
// its stdin closes. Signatures are not checked; any credentials work.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:0", "address to listen on")
	buckets := flag.String("buckets", "velero", "comma-separated buckets to create at start")
	stdinEOF := flag.Bool("stop-on-stdin-eof", false, "stop when stdin reaches EOF (the parent died)")
	flag.Parse()

	backend := s3mem.New()
	for _, b := range strings.Split(*buckets, ",") {
		if b = strings.TrimSpace(b); b != "" {
			if err := backend.CreateBucket(b); err != nil {
				log.Fatalf("s3: create bucket %q: %v", b, err)
			}
		}
	}
	faker := gofakes3.New(backend, gofakes3.WithLogger(gofakes3.GlobalLog()))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("s3: listen: %v", err)
	}
	srv := &http.Server{Handler: faker.Server(), ReadHeaderTimeout: 30 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Fatalf("s3: serve: %v", err)
		}
	}()
	line, _ := json.Marshal(map[string]any{"url": "http://" + ln.Addr().String(), "pid": os.Getpid()})
	fmt.Println(string(line))

	stop := make(chan os.Signal, 2)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	closed := make(chan struct{})
	if *stdinEOF {
		go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(closed) }()
	}
	select {
	case <-stop:
	case <-closed:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}
