// Command kube-fixture runs a throwaway Kubernetes control plane for tests: an
// embedded etcd and a real kube-apiserver in one process, listening on
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
	"os/signal"
	"path/filepath"
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
	verbosity      int
	extraArgs      []string
}

func main() {
	if filepath.Base(os.Args[0]) == "kubectl" {
		os.Exit(runKubectl())
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "kube-fixture: %v\n", err)
		os.Exit(1)
	}
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
	fs.IntVar(&o.verbosity, "v", 0, "kube-apiserver log verbosity")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o.extraArgs = fs.Args()
	return o, nil
}

func run(args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if o.dataDir == "" {
		o.dataDir, err = os.MkdirTemp("", "kube-fixture-")
		if err != nil {
			return fmt.Errorf("creating data dir: %w", err)
		}
	} else if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return fmt.Errorf("creating data dir %s: %w", o.dataDir, err)
	}
	if o.dataDir, err = filepath.Abs(o.dataDir); err != nil {
		return fmt.Errorf("resolving data dir: %w", err)
	}
	cleanup := func() {
		if !o.keepDataDir {
			_ = os.RemoveAll(o.dataDir)
		}
	}

	for _, p := range []*int{&o.securePort, &o.etcdClientPort, &o.etcdPeerPort} {
		if *p == 0 {
			if *p, err = freePort(); err != nil {
				return err
			}
		}
	}
	if o.token == "" {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("generating token: %w", err)
		}
		o.token = hex.EncodeToString(b)
	}

	// The fixture is disposable: on a signal or on the parent's death it exits
	// at once instead of shutting the apiserver down gracefully, which can take
	// a minute while watches drain.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "kube-fixture: got %v, exiting\n", s)
		cleanup()
		os.Exit(0)
	}()
	if o.exitOnStdinEOF {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			fmt.Fprintln(os.Stderr, "kube-fixture: stdin closed, exiting")
			cleanup()
			os.Exit(0)
		}()
	}

	files, err := writeCredentials(o)
	if err != nil {
		cleanup()
		return err
	}

	etcd, err := startEtcd(o)
	if err != nil {
		cleanup()
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
		cleanup()
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	cleanup()
	return nil
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
	// write latency on shared CI disks.
	cfg.UnsafeNoFsync = true
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
