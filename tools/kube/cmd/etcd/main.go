// Command etcd is etcd's server entry point, built from the etcd server module
// at the version the kube-apiserver of this module expects.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
