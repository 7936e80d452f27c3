// compose-check loads a compose project with the loader `docker compose` itself is built on
// (compose-go), with the options `docker compose [--env-file F] [--profile P] -f FILE config
// --quiet` passes it, so machines without the compose plugin or a Docker engine still get the
// real interpolation, schema validation, path resolution and consistency checks. On top, it
// requires what `docker compose up` needs on the host and the loader does not look at: every
// secret or config file of an enabled service, and every bind-mount source, exists.
//
//	compose-check [--env-file F]... [--profile P]... [--project-directory D] -f FILE [-f FILE]...
//
// Exits 0 and prints nothing when the project loads; otherwise prints the loader's message
// on stderr and exits 1 (2 for bad arguments).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func main() {
	var files, envFiles, profiles repeated
	var projectDir, projectName string
	fs := flag.NewFlagSet("compose-check", flag.ContinueOnError)
	fs.Var(&files, "f", "compose file (repeatable)")
	fs.Var(&files, "file", "compose file (repeatable)")
	fs.Var(&envFiles, "env-file", "environment file (repeatable)")
	fs.Var(&profiles, "profile", "profile to enable (repeatable)")
	fs.StringVar(&projectDir, "project-directory", "", "working directory (default: the first compose file's)")
	fs.StringVar(&projectName, "p", "", "project name")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "compose-check: unexpected arguments %q\n", fs.Args())
		os.Exit(2)
	}
	if err := check(files, envFiles, profiles, projectDir, projectName); err != nil {
		fmt.Fprintf(os.Stderr, "compose-check: %v\n", err)
		os.Exit(1)
	}
}

func check(files, envFiles, profiles []string, projectDir, projectName string) error {
	// The same option order as docker compose's project loading: OS environment first (it
	// wins), then the env files, the compose file discovery, profiles and name; then the
	// `config` command's own switches.
	opts := []cli.ProjectOptionsFn{
		cli.WithInterpolation(true),
		cli.WithResolvedPaths(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithDefaultProfiles(profiles...),
		cli.WithDiscardEnvFile,
		cli.WithWorkingDirectory(projectDir),
		cli.WithOsEnv,
	}
	if _, ok := os.LookupEnv("PWD"); !ok {
		if pwd, err := os.Getwd(); err == nil {
			opts = append(opts, cli.WithEnv([]string{"PWD=" + pwd}))
		}
	}
	opts = append(opts,
		cli.WithEnvFiles(envFiles...),
		cli.WithDotEnv,
		cli.WithConfigFileEnv,
		cli.WithDefaultConfigPath,
		cli.WithEnvFiles(envFiles...),
		cli.WithDotEnv,
		cli.WithDefaultProfiles(profiles...),
		cli.WithName(projectName),
	)
	options, err := cli.NewProjectOptions(files, opts...)
	if err != nil {
		return err
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		return err
	}
	if project.Name == "" {
		return errors.New("project name can't be empty")
	}
	if project, err = project.WithServicesEnabled(); err != nil {
		return err
	}
	if project, err = project.WithSelectedServices(nil); err != nil {
		return err
	}
	project = project.WithoutUnnecessaryResources()
	if project, err = project.WithServicesEnvironmentResolved(true); err != nil {
		return err
	}
	if err := project.CheckContainerNameUnicity(); err != nil {
		return err
	}
	return hostFilesExist(project)
}

// hostFilesExist reports every missing host file at once, by the name the compose file uses.
func hostFilesExist(p *types.Project) error {
	var missing []string
	for name, s := range p.Secrets {
		if s.File != "" && !s.External {
			if _, err := os.Stat(s.File); err != nil {
				missing = append(missing, fmt.Sprintf("secret %q: file %s does not exist", name, s.File))
			}
		}
	}
	for name, c := range p.Configs {
		if c.File != "" && !c.External {
			if _, err := os.Stat(c.File); err != nil {
				missing = append(missing, fmt.Sprintf("config %q: file %s does not exist", name, c.File))
			}
		}
	}
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			// Compose would create a missing source as an empty directory, so a mistyped
			// path to a file mounts a directory instead of failing: refuse it here.
			if v.Type == types.VolumeTypeBind && v.Source != "" {
				if _, err := os.Stat(v.Source); err != nil {
					missing = append(missing, fmt.Sprintf("service %q: bind-mount source %s does not exist", name, v.Source))
				}
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	return errors.New(strings.Join(missing, "; "))
}
