// Command kube-fixture runs a throwaway Kubernetes control plane for tests: an
// embedded etcd and a real kube-apiserver in one binary, listening on
// 127.0.0.1 only, with all state under one data directory.
//
// It generates its own CA, serving certificate, service-account key and admin
// token, writes a kubeconfig into the data directory, and prints one line
//
//	kube-fixture ready kubeconfig=<path> server=<url>
//
// on stdout once /readyz answers ok. Everything else (apiserver and etcd logs)
// goes to stderr or to files in the data directory.
//
// The process is a small supervisor around a child (the same binary) that
// runs etcd and the apiserver. Stopping means killing the child and then
// removing the data directory: removing it under a live etcd makes etcd or
// the apiserver die with arbitrary exit codes, and neither can be stopped
// quickly from inside the process.
//
// Invoked through a link named "kubectl", the same binary is kubectl: one link
// step and one file instead of two, since both share most of their packages.
package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

type options struct {
	dataDir        string
	securePort     int
	etcdClientPort int
	etcdPeerPort   int
	token          string
	serviceCIDRs   string
	exitOnStdinEOF bool
	keepDataDir    bool
	etcdFsync      bool
	verbosity      int
	extraArgs      []string
}

// childEnv marks the supervised child process, which runs the servers.
const childEnv = "KUBE_FIXTURE_SERVER_CHILD"

func main() {
	if filepath.Base(os.Args[0]) == "kubectl" {
		os.Exit(runKubectl())
	}
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	} else if err != nil {
		os.Exit(2)
	}
	if os.Getenv(childEnv) == "1" {
		if err := serve(o); err != nil {
			fmt.Fprintf(os.Stderr, "kube-fixture: %v\n", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(supervise(o))
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	// A private FlagSet: the global one belongs to klog and the apiserver.
	fs := flag.NewFlagSet("kube-fixture", flag.ContinueOnError)
	fs.StringVar(&o.dataDir, "data-dir", "", "directory for etcd data, certificates and the kubeconfig (default: a new temporary directory)")
	fs.IntVar(&o.securePort, "secure-port", 0, "kube-apiserver HTTPS port on 127.0.0.1 (0: pick a free one)")
	fs.IntVar(&o.etcdClientPort, "etcd-client-port", 0, "etcd client port on 127.0.0.1 (0: pick a free one)")
	fs.IntVar(&o.etcdPeerPort, "etcd-peer-port", 0, "etcd peer port on 127.0.0.1 (0: pick a free one)")
	fs.StringVar(&o.token, "token", "", "bearer token of the system:masters admin user (default: random)")
	fs.StringVar(&o.serviceCIDRs, "service-cluster-ip-range", "10.96.0.0/16,fd00:10:96::/112", "Service clusterIP ranges; one IPv4 and one IPv6 range make the cluster dual-stack")
	fs.BoolVar(&o.exitOnStdinEOF, "exit-on-stdin-eof", false, "exit (and clean up) when stdin reaches EOF, i.e. when the parent process dies; lets a test process that never runs destructors still stop its fixture")
	fs.BoolVar(&o.keepDataDir, "keep-data-dir", false, "leave the data directory in place on exit (for debugging)")
	fs.BoolVar(&o.etcdFsync, "etcd-fsync", false, "let etcd fsync its WAL and backend as a production member does (default off: the store is thrown away, and fsync dominates write latency on shared disks); for benchmarks that want a production write path")
	fs.IntVar(&o.verbosity, "v", 0, "kube-apiserver log verbosity")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o.extraArgs = fs.Args()
	return o, nil
}

// supervise settles every setting (data dir, ports, token) so that the child
// needs no choices of its own, runs the child, and removes the data dir once
// the child is gone. It returns the exit code.
func supervise(o *options) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "kube-fixture: "+format+"\n", args...)
		return 1
	}
	var err error
	if o.dataDir == "" {
		if o.dataDir, err = os.MkdirTemp("", "kube-fixture-"); err != nil {
			return fail("creating data dir: %v", err)
		}
	} else if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return fail("creating data dir %s: %v", o.dataDir, err)
	}
	if o.dataDir, err = filepath.Abs(o.dataDir); err != nil {
		return fail("resolving data dir: %v", err)
	}
	cleanup := func() {
		if !o.keepDataDir {
			if err := os.RemoveAll(o.dataDir); err != nil {
				fmt.Fprintf(os.Stderr, "kube-fixture: removing %s: %v\n", o.dataDir, err)
			}
		}
	}
	for _, p := range []*int{&o.securePort, &o.etcdClientPort, &o.etcdPeerPort} {
		if *p == 0 {
			if *p, err = freePort(); err != nil {
				cleanup()
				return fail("%v", err)
			}
		}
	}
	if o.token == "" {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			cleanup()
			return fail("generating token: %v", err)
		}
		o.token = hex.EncodeToString(b)
	}

	// Subscribe before starting the child so that no signal slips through.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	stdinClosed := make(chan struct{})
	if o.exitOnStdinEOF {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			close(stdinClosed)
		}()
	}

	self, err := os.Executable()
	if err != nil {
		cleanup()
		return fail("finding own executable: %v", err)
	}
	args := []string{
		"--data-dir=" + o.dataDir,
		"--secure-port=" + strconv.Itoa(o.securePort),
		"--etcd-client-port=" + strconv.Itoa(o.etcdClientPort),
		"--etcd-peer-port=" + strconv.Itoa(o.etcdPeerPort),
		"--token=" + o.token,
		"--service-cluster-ip-range=" + o.serviceCIDRs,
		"--etcd-fsync=" + strconv.FormatBool(o.etcdFsync),
		"--v=" + strconv.Itoa(o.verbosity),
		"--",
	}
	child := exec.Command(self, append(args, o.extraArgs...)...)
	child.Env = append(os.Environ(), childEnv+"=1")
	child.Stdout = os.Stdout
	child.Stderr = os.Stderr
	// Pdeathsig fires when the thread that forked exits, not the process; a
	// locked main thread lives as long as the process, so should the
	// supervisor be SIGKILLed the child dies with it.
	runtime.LockOSThread()
	child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := child.Start(); err != nil {
		cleanup()
		return fail("starting the server process: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()

	// A stop request kills the child at once instead of letting the
	// apiserver drain its watches, which can take a minute: the data is
	// thrown away anyway.
	stop := func(why string) int {
		fmt.Fprintf(os.Stderr, "kube-fixture: %s, stopping\n", why)
		_ = child.Process.Kill()
		<-exited
		cleanup()
		return 0
	}
	select {
	case s := <-sigs:
		return stop("got " + s.String())
	case <-stdinClosed:
		return stop("stdin closed")
	case err := <-exited:
		cleanup()
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) && exitErr.ExitCode() > 0 {
			return exitErr.ExitCode()
		}
		if err != nil {
			return fail("server process: %v", err)
		}
		return fail("server process exited unexpectedly")
	}
}

// serve runs etcd and the apiserver with the settings supervise chose.
func serve(o *options) error {
	files, err := writeCredentials(o)
	if err != nil {
		return err
	}

	etcd, err := startEtcd(o)
	if err != nil {
		return err
	}
	defer etcd.Close()

	serverURL := fmt.Sprintf("https://127.0.0.1:%d", o.securePort)
	go announceReady(serverURL, o.token, files)

	apiArgs := []string{
		"--etcd-servers=" + fmt.Sprintf("http://127.0.0.1:%d", o.etcdClientPort),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(o.securePort),
		"--cert-dir=" + filepath.Join(o.dataDir, "certs"),
		"--tls-cert-file=" + files.servingCert,
		"--tls-private-key-file=" + files.servingKey,
		"--client-ca-file=" + files.caCert,
		"--token-auth-file=" + files.tokenFile,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + files.saKey,
		"--service-account-signing-key-file=" + files.saKey,
		"--service-cluster-ip-range=" + o.serviceCIDRs,
		"--authorization-mode=RBAC",
		// ServiceAccount admission waits for token controllers, which live in
		// the controller manager that this fixture does not run.
		"--disable-admission-plugins=ServiceAccount",
		// The endpoint reconciler would publish 127.0.0.1 as the endpoint of
		// the default/kubernetes Service, which nothing in tests reads.
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
		"--v=" + strconv.Itoa(o.verbosity),
	}
	apiArgs = append(apiArgs, o.extraArgs...)

	cmd := app.NewAPIServerCommand()
	cmd.SetArgs(apiArgs)
	if err := cmd.Execute(); err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	return errors.New("kube-apiserver returned without error")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("picking a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startEtcd(o *options) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = "kube-fixture"
	cfg.Dir = filepath.Join(o.dataDir, "etcd")
	client := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", o.etcdClientPort)}
	peer := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", o.etcdPeerPort)}
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// Durability is worthless for a throwaway store, and fsync dominates
	// write latency on shared CI disks; --etcd-fsync restores it for
	// benchmarks that should see a production member's write latency.
	cfg.UnsafeNoFsync = !o.etcdFsync
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{filepath.Join(o.dataDir, "etcd.log")}

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("starting etcd on %s: %w", client.Host, err)
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcd failed while starting: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, errors.New("etcd did not become ready within 60s")
	}
}

type credentialFiles struct {
	caCert, servingCert, servingKey, saKey, tokenFile, kubeconfig string
	caPEM                                                         []byte
}

func writeCredentials(o *options) (*credentialFiles, error) {
	dir := filepath.Join(o.dataDir, "pki")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	f := &credentialFiles{
		caCert:      filepath.Join(dir, "ca.crt"),
		servingCert: filepath.Join(dir, "apiserver.crt"),
		servingKey:  filepath.Join(dir, "apiserver.key"),
		saKey:       filepath.Join(dir, "sa.key"),
		tokenFile:   filepath.Join(dir, "tokens.csv"),
		kubeconfig:  filepath.Join(o.dataDir, "kubeconfig"),
	}

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating CA key: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kube-fixture-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("parsing CA certificate: %w", err)
	}
	f.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})

	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating serving key: %w", err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		DNSNames:     []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("creating serving certificate: %w", err)
	}
	srvKeyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		return nil, fmt.Errorf("encoding serving key: %w", err)
	}

	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generating service-account key: %w", err)
	}

	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kube-fixture
  cluster:
    server: https://127.0.0.1:%d
    certificate-authority-data: %s
users:
- name: kube-fixture-admin
  user:
    token: %s
contexts:
- name: kube-fixture
  context:
    cluster: kube-fixture
    user: kube-fixture-admin
    namespace: default
current-context: kube-fixture
`, o.securePort, base64.StdEncoding.EncodeToString(f.caPEM), o.token)

	writes := []struct {
		path string
		data []byte
	}{
		{f.caCert, f.caPEM},
		{f.servingCert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER})},
		{f.servingKey, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: srvKeyDER})},
		{f.saKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)})},
		{f.tokenFile, []byte(fmt.Sprintf("%s,kube-fixture-admin,kube-fixture-admin,\"system:masters\"\n", o.token))},
		{f.kubeconfig, []byte(kubeconfig)},
	}
	for _, w := range writes {
		if err := os.WriteFile(w.path, w.data, 0o600); err != nil {
			return nil, fmt.Errorf("writing %s: %w", w.path, err)
		}
	}
	return f, nil
}

// announceReady polls /readyz and prints the ready line once it answers ok,
// so that shell scripts can wait on a line instead of speaking TLS themselves.
func announceReady(serverURL, token string, f *credentialFiles) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(f.caPEM)
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	ctx := context.Background()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, serverURL+"/readyz", nil)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kube-fixture: building readyz request: %v\n", err)
			return
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				w := bufio.NewWriter(os.Stdout)
				fmt.Fprintf(w, "kube-fixture ready kubeconfig=%s server=%s\n", f.kubeconfig, serverURL)
				_ = w.Flush()
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}
