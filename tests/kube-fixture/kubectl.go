package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

// runKubectl is upstream's cmd/kubectl main. The client auth plugins (OIDC)
// are left out: the fixture's kubeconfig uses a static token.
func runKubectl() int {
	// Verbosity must be known before the command is built, which already logs.
	logs.GlogSetter(cmd.GetLogVerbosity(os.Args)) // nolint:errcheck
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		// CheckErr prints the error the way kubectl does and exits non-zero.
		util.CheckErr(err)
	}
	return 0
}
