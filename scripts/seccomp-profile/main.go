// Command seccomp-profile writes config/seccomp/restack-build.json, the Localhost seccomp profile
// of restack's build pods: containerd's own RuntimeDefault profile for a container with the build
// pod's capabilities (containerd's default set, plus CAP_SYS_ADMIN, minus CAP_NET_RAW, as
// src/operator/build-pod.ts asks), plus the system calls LXC needs beyond it (`extra` below).
//
//	cd scripts/seccomp-profile && go run . > ../../config/seccomp/restack-build.json
//
// The output is the OCI runtime-spec LinuxSeccomp JSON that containerd's CRI loads for a
// Localhost profile (contrib/seccomp.WithProfile unmarshals the file into specs.LinuxSeccomp).
// The profile depends on the architecture this runs on (DefaultProfile uses runtime.GOARCH).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// The system calls a build pod needs that RuntimeDefault denies even with CAP_SYS_ADMIN, each
// proven on a real node (test/operator/real-node.test.ts): LXC enters a build container's root
// with pivot_root(2).
var extra = []string{"pivot_root"}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "seccomp-profile: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	ctx := namespaces.WithNamespace(context.Background(), "k8s.io")
	spec, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "restack-build"},
		oci.WithAddedCapabilities([]string{"CAP_SYS_ADMIN"}),
		oci.WithDroppedCapabilities([]string{"CAP_NET_RAW"}),
	)
	if err != nil {
		return err
	}
	profile := seccomp.DefaultProfile(spec)
	profile.Syscalls = append(profile.Syscalls, specs.LinuxSyscall{Names: extra, Action: specs.ActAllow})
	out := json.NewEncoder(os.Stdout)
	out.SetIndent("", "  ")
	return out.Encode(profile)
}
