// Command etcd is the etcd server, built from the same module graph as the
// Kubernetes control plane so that the test bed runs the etcd version that
// Kubernetes itself is tested with.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
