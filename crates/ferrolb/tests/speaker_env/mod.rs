//! A small cluster for speaker tests: the shared API server fixture, a
//! router and N node namespaces, one relay per node so the unchanged
//! kubeconfig reaches the API server from inside, Node and speaker Pod
//! objects as a kubelet would write them, and `ferrolb speaker` started in
//! each node as the `metallb-system/speaker` ServiceAccount.
//!
//! Tests of one binary share the API server; each cluster uses its own
//! address block (its `slot`), node names and namespace, and deletes what it
//! created. They run one at a time ([`serial`]): each starts three speakers
//! on a two-core machine, and failover times are what they measure.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use ferrolb_api::v1beta1::{BFDProfile, BGPAdvertisement, IPAddressPool, L2Advertisement, ServiceBGPStatus, ServiceL2Status};
use ferrolb_api::v1beta2::BGPPeer;
use ferrolb_test_harness::identity::{self, Identity};
use ferrolb_test_harness::kubelet::{self, EndpointOnNode};
use ferrolb_test_harness::netns::{NsProcess, Topology, unique_prefix};
use ferrolb_test_harness::relay::{self, Relay};
use ferrolb_test_harness::{KubeFixture, apply_yaml, create_namespace, install_crds, probe, shared};
use k8s_openapi::api::core::v1::{Event, Node, Pod, Service};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

pub const METALLB_NS: &str = "metallb-system";
const TOPOLOGY_LABEL: &str = "ferrolb.test/topology";
/// Pools (one address of each family each) created per cluster.
const POOLS: usize = 6;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

pub struct Cluster {
    pub fixture: &'static KubeFixture,
    pub admin: Client,
    pub topo: Topology,
    pub prefix: String,
    /// The Services' namespace.
    pub ns: String,
    slot: u8,
    relays: Vec<Relay>,
    speakers: Vec<Option<NsProcess>>,
    /// More environment for every speaker (e.g. METALLB_BGP_TYPE).
    speaker_env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

/// A LoadBalancer Service with its addresses already assigned.
pub struct ServiceSpec {
    name: String,
    ips: Vec<IpAddr>,
    endpoint_nodes: Vec<usize>,
    local: bool,
    sharing: Option<String>,
    labels: BTreeMap<String, String>,
}

impl ServiceSpec {
    pub fn new(name: &str, ips: &[IpAddr]) -> Self {
        ServiceSpec {
            name: name.into(),
            ips: ips.to_vec(),
            endpoint_nodes: vec![],
            local: false,
            sharing: None,
            labels: BTreeMap::new(),
        }
    }
    pub fn endpoints_on(mut self, nodes: &[usize]) -> Self {
        self.endpoint_nodes = nodes.to_vec();
        self
    }
    pub fn local(mut self) -> Self {
        self.local = true;
        self
    }
    pub fn sharing(mut self, key: &str) -> Self {
        self.sharing = Some(key.into());
        self
    }
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
}

impl Cluster {
    /// `slot` (0..8) picks this cluster's addresses, so clusters of one test
    /// binary never share a pool range (overlapping pools are invalid).
    pub async fn start(tag: &str, nodes: usize, slot: u8) -> Cluster {
        Cluster::start_with_env(tag, nodes, slot, &[]).await
    }

    /// [`Cluster::start`] with more environment for the speakers.
    pub async fn start_with_env(tag: &str, nodes: usize, slot: u8, env: &[(&str, &str)]) -> Cluster {
        let fixture = shared().await.expect("API server fixture");
        let admin = fixture.client().expect("admin client");
        install_crds(&admin, &ferrolb_api::crds::render_yaml()).await.expect("CRDs");
        identity::apply_deploy_rbac(&admin).await.expect("deploy RBAC");
        remove_bgp_leftovers(&admin).await;
        let prefix = unique_prefix(tag);
        let topo = Topology::new(&prefix, nodes).expect("topology");
        let ns = prefix.clone();
        create_namespace(&admin, &ns).await.expect("namespace");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("secretkey"), b"ferrolb-test-key-22chr").expect("secret key");
        let kubeconfig = Identity::speaker().write_kubeconfig(fixture, &dir.path().join("speaker.kubeconfig")).expect("kubeconfig");
        let port = relay::server_port(fixture.server_url()).expect("API port");
        let speaker_env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut c = Cluster { fixture, admin, topo, prefix, ns, slot, relays: vec![], speakers: vec![], speaker_env, dir, kubeconfig };
        for i in 1..=nodes {
            let host = c.topo.node(i).clone();
            // The Service addresses live on lo (so a connection to them is
            // accepted); the kernel must not answer ARP for them itself.
            host.ns
                .sysctl(&[("net.ipv4.conf.all.arp_ignore", "1"), ("net.ipv4.conf.all.arp_announce", "2")])
                .expect("sysctl");
            for p in 0..POOLS {
                host.ns.add_lo_address(IpAddr::V4(c.vip(p))).expect("lo address");
                host.ns.add_lo_address(IpAddr::V6(c.vip6(p))).expect("lo address");
            }
            c.relays.push(Relay::start(&host.ns, port).expect("relay"));
            let name = c.node_name(i);
            kubelet::create_ready_node(
                &c.admin,
                &name,
                &[(TOPOLOGY_LABEL, c.prefix.as_str())],
                &[IpAddr::V4(host.ipv4), IpAddr::V6(host.ipv6)],
            )
            .await
            .expect("node");
            kubelet::create_speaker_pod(&c.admin, METALLB_NS, &c.pod_name(i), &name, &[IpAddr::V4(host.ipv4)])
                .await
                .expect("speaker pod");
        }
        c.create_config().await;
        for i in 1..=nodes {
            c.speakers.push(None);
            c.start_speaker(i);
        }
        c.wait_members(nodes).await;
        c
    }

    /// This cluster's address block (see [`Cluster::start`]).
    pub fn slot(&self) -> u8 {
        self.slot
    }

    /// This cluster's BGP addresses: one /28 and one /124 per slot, apart from
    /// the layer 2 pools of speaker_env.
    pub fn bgp_vip(&self, i: u8) -> Ipv4Addr {
        Ipv4Addr::new(203, 0, 113, 16 * self.slot + i)
    }

    pub fn bgp_vip6(&self, i: u16) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 0xb0, 0, 0, 0, 0, 0x10 * u16::from(self.slot) + i)
    }

    /// A pool of this cluster's BGP addresses (IPv4, and IPv6 with `v6`: native
    /// mode refuses BGP for pools with IPv6) and its advertisement.
    pub async fn bgp_pool(&self, name: &str, first: u8, count: u8, v6: bool, ad_spec: &str) {
        let mut ranges = format!("{}-{}", self.bgp_vip(first), self.bgp_vip(first + count - 1));
        if v6 {
            ranges.push_str(&format!(", {}-{}", self.bgp_vip6(u16::from(first)), self.bgp_vip6(u16::from(first + count - 1))));
        }
        let yaml = format!(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {prefix}-{name}, namespace: {METALLB_NS}}}\n\
             spec: {{addresses: [{ranges}], autoAssign: false}}\n---\n\
             apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: {prefix}-{name}, namespace: {METALLB_NS}}}\n\
             spec: {{ipAddressPools: [{prefix}-{name}], {ad_spec}}}\n",
            prefix = self.prefix,
        );
        apply_yaml(&self.admin, &yaml).await.expect("pool and BGP advertisement");
    }

    pub async fn bgp_peer(&self, name: &str, spec: &str) {
        let yaml = format!(
            "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: {prefix}-{name}, namespace: {METALLB_NS}}}\nspec: {{{spec}}}\n",
            prefix = self.prefix
        );
        apply_yaml(&self.admin, &yaml).await.expect("BGP peer");
    }

    /// Waits until the Service's ServiceBGPStatus objects are exactly one per
    /// node of `want`, listing its peers (BGPPeer names without this
    /// cluster's prefix).
    pub async fn wait_bgp_status(&self, service: &str, want: &[(usize, &[&str])]) {
        let api: Api<ServiceBGPStatus> = Api::namespaced(self.admin.clone(), METALLB_NS);
        let selector = format!("metallb.io/service-name={service},metallb.io/service-namespace={}", self.ns);
        let mut want: Vec<(String, Vec<String>)> =
            want.iter().map(|(i, peers)| (self.node_name(*i), peers.iter().map(|p| format!("{}-{p}", self.prefix)).collect())).collect();
        want.sort();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let list = api.list(&ListParams::default().labels(&selector)).await.expect("list statuses");
            let mut seen: Vec<(String, Vec<String>)> = list
                .items
                .iter()
                .map(|s| {
                    let st = s.status.clone().unwrap_or_default();
                    (st.node, st.peers)
                })
                .collect();
            seen.sort();
            if seen == want {
                return;
            }
            assert!(Instant::now() < deadline, "ServiceBGPStatus of {service}: {seen:?}, want {want:?}\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn node_name(&self, i: usize) -> String {
        format!("{}-node{i}", self.prefix)
    }

    fn pod_name(&self, i: usize) -> String {
        format!("speaker-{}", self.node_name(i))
    }

    pub fn vip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(198, 51, 100, 160 + 16 * self.slot + i as u8)
    }

    pub fn vip6(&self, i: usize) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xa0 + 0x10 * u16::from(self.slot) + i as u16)
    }

    pub fn mac(&self, i: usize) -> &str {
        &self.topo.node(i).mac
    }

    pub fn node_of_mac(&self, mac: &str) -> usize {
        (1..=self.topo.nodes().len()).find(|i| self.mac(*i).eq_ignore_ascii_case(mac)).unwrap_or_else(|| panic!("{mac} is no node's MAC"))
    }

    async fn create_config(&self) {
        for p in 0..POOLS {
            let yaml = format!(
                "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {prefix}-p{p}, namespace: {METALLB_NS}}}\n\
                 spec: {{addresses: [{v4}/32, {v6}/128], autoAssign: false}}\n---\n\
                 apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: {prefix}-a{p}, namespace: {METALLB_NS}}}\n\
                 spec: {{ipAddressPools: [{prefix}-p{p}], nodeSelectors: [{{matchLabels: {{{TOPOLOGY_LABEL}: {prefix}}}}}]}}\n",
                prefix = self.prefix,
                v4 = self.vip(p),
                v6 = self.vip6(p),
            );
            apply_yaml(&self.admin, &yaml).await.expect("pool and advertisement");
        }
    }

    fn ads(&self) -> Api<L2Advertisement> {
        Api::namespaced(self.admin.clone(), METALLB_NS)
    }

    /// Restricts pool `p`'s advertisement to node `i`.
    pub async fn pin_pool_to_node(&self, p: usize, i: usize) {
        let patch = json!({"spec": {"nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": self.node_name(i)}}]}});
        self.ads().patch(&format!("{}-a{p}", self.prefix), &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch ad");
    }

    /// Limits pool `p`'s advertisement to Services labelled `key=value`.
    pub async fn select_services(&self, p: usize, key: &str, value: &str) {
        let patch = json!({"spec": {"serviceSelectors": [{"matchLabels": {key: value}}]}});
        self.ads().patch(&format!("{}-a{p}", self.prefix), &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch ad");
    }

    pub async fn restrict_pool_to_interface(&self, p: usize, iface: &str) {
        let patch = json!({"spec": {"interfaces": [iface]}});
        self.ads().patch(&format!("{}-a{p}", self.prefix), &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch ad");
    }

    pub fn start_speaker(&mut self, i: usize) {
        let host = self.topo.node(i).clone();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrolb"));
        cmd.args(["speaker", "--node-name", &self.node_name(i), "--pod-name", &self.pod_name(i)])
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--ml-bindaddr", &host.ipv4.to_string(), "--ml-labels", "app=metallb,component=speaker"])
            .arg("--ml-secret-key-path")
            .arg(self.dir.path())
            .arg("--excludel2-path")
            .arg(self.dir.path().join("no-excludel2.yaml"))
            .args(["--health-probe-port", "0", "--log-format", "text", "--log-level", "info"])
            .env("METALLB_NAMESPACE", METALLB_NS)
            .envs(self.speaker_env.iter().map(|(k, v)| (k, v)));
        let log = self.dir.path().join(format!("speaker-node{i}.log"));
        let process = host.ns.spawn(&cmd, &log).expect("speaker starts");
        self.speakers[i - 1] = Some(process);
    }

    /// SIGKILL; returns when the signal was sent.
    pub fn kill_speaker(&mut self, i: usize) -> Instant {
        self.speakers[i - 1].take().expect("speaker running").kill().expect("kill")
    }

    /// SIGTERM, then waits (bounded) for the process to exit.
    pub fn stop_speaker(&mut self, i: usize) -> Instant {
        let mut process = self.speakers[i - 1].take().expect("speaker running");
        let pid = libc::pid_t::try_from(process.pid()).expect("pid");
        let at = Instant::now();
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while process.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "speaker {i} did not exit within 10 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        at
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("speaker-node{i}.log"))).unwrap_or_default()
    }

    /// GET /metrics from speaker `i` inside its namespace.
    pub fn metrics(&self, i: usize) -> String {
        self.topo
            .node(i)
            .ns
            .enter(|| {
                let mut s = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], 7472)), Duration::from_secs(1)).ok()?;
                s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
                s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
                let mut out = String::new();
                s.read_to_string(&mut out).ok()?;
                Some(out)
            })
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Waits until every running speaker sees `n` live members.
    pub async fn wait_members(&self, n: usize) {
        let line = format!("ferrolb_membership_members {n}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let running: Vec<usize> = (1..=self.speakers.len()).filter(|i| self.speakers[i - 1].is_some()).collect();
            if running.iter().all(|i| self.metrics(*i).lines().any(|l| l.trim() == line)) {
                return;
            }
            assert!(Instant::now() < deadline, "speakers did not all see {n} members:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn logs(&self) -> String {
        (1..=self.speakers.len()).map(|i| format!("--- node{i}\n{}", tail(&self.log(i), 40))).collect()
    }

    pub async fn create_service(&self, spec: &ServiceSpec) {
        let mut annotations = BTreeMap::new();
        if let Some(key) = &spec.sharing {
            annotations.insert("metallb.io/allow-shared-ip".to_string(), key.clone());
        }
        let families: Vec<&str> = spec.ips.iter().map(|ip| if ip.is_ipv4() { "IPv4" } else { "IPv6" }).collect();
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": spec.name, "namespace": self.ns, "annotations": annotations, "labels": spec.labels},
            "spec": {
                "type": "LoadBalancer",
                "ports": [{"port": 8080, "protocol": "TCP"}],
                "externalTrafficPolicy": if spec.local { "Local" } else { "Cluster" },
                "ipFamilyPolicy": if spec.ips.len() > 1 { "PreferDualStack" } else { "SingleStack" },
                "ipFamilies": families,
            }
        }))
        .expect("service");
        let api: Api<Service> = Api::namespaced(self.admin.clone(), &self.ns);
        api.create(&PostParams::default(), &svc).await.expect("create service");
        // The controller's write, done directly: these tests are about the speaker.
        let ingress: Vec<_> = spec.ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect();
        api.patch_status(&spec.name, &PatchParams::default(), &Patch::Merge(&json!({"status": {"loadBalancer": {"ingress": ingress}}})))
            .await
            .expect("service status");
        let endpoints: Vec<EndpointOnNode> = spec
            .endpoint_nodes
            .iter()
            .map(|n| EndpointOnNode::ready(IpAddr::V4(Ipv4Addr::new(10, 244, *n as u8, 10)), &self.node_name(*n)))
            .collect();
        kubelet::apply_endpoint_slice(&self.admin, &self.ns, &spec.name, &format!("{}-1", spec.name), &endpoints, 8080)
            .await
            .expect("endpoint slice");
    }

    /// The node MetalLB's election picks among all nodes (no preferences).
    pub fn expected_owner(&self, _service: &str, first_ip: IpAddr) -> usize {
        (1..=self.topo.nodes().len())
            .min_by_key(|i| ferrolb_speaker::decide::election_hash(&self.node_name(*i), &first_ip))
            .expect("nodes")
    }

    /// Nodes whose MAC answered ARP for `ip` (three requests).
    pub fn arp_owners(&self, ip: Ipv4Addr) -> Vec<usize> {
        let mut macs = probe::arp_answers(&self.topo.router().ns, ip, 3).expect("arping runs");
        macs.sort();
        macs.dedup();
        macs.iter().map(|m| self.node_of_mac(m)).collect()
    }

    /// Waits until exactly one node answers for `ip`, and returns it.
    pub async fn wait_single_arp_owner(&self, ip: Ipv4Addr, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let owners = self.arp_owners(ip);
            if owners.len() == 1 {
                return owners[0];
            }
            assert!(owners.len() < 2, "{ip}: several nodes answer: {owners:?}\n{}", self.logs());
            assert!(Instant::now() < deadline, "{ip}: no node answers ARP\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn ping6(&self, ip: Ipv6Addr) {
        // The result does not matter: the ping makes the router's kernel resolve the address.
        let _ = self.topo.router().ns.output("ping", &["-6", "-c", "1", "-W", "1", &ip.to_string()]);
    }

    /// Turns the router's entry for `ip` STALE, so its next use sends a unicast probe.
    pub fn make_stale(&self, ip: IpAddr) {
        let entry = probe::neigh(&self.topo.router().ns, ip).expect("ip neigh").expect("entry to make stale");
        self.topo
            .router()
            .ns
            .run("ip", &["neigh", "change", &ip.to_string(), "dev", "eth0", "lladdr", &entry.mac, "nud", "stale"])
            .expect("neigh change");
    }

    /// A TCP listener on `addr` inside node `i`, accepting in the background.
    pub fn listen(&self, i: usize, addr: SocketAddr) -> TcpListener {
        let listener = self.topo.node(i).ns.enter(|| TcpListener::bind(addr)).expect("enter").expect("bind");
        let clone = listener.try_clone().expect("clone");
        std::thread::spawn(move || {
            for conn in clone.incoming() {
                if conn.is_err() {
                    return;
                }
            }
        });
        listener
    }

    /// Waits until the Service's ServiceL2Status objects name exactly `node`
    /// (or none exist for `None`).
    pub async fn wait_l2_status(&self, service: &str, node: Option<usize>) {
        let api: Api<ServiceL2Status> = Api::namespaced(self.admin.clone(), METALLB_NS);
        let selector = format!("metallb.io/service-name={service},metallb.io/service-namespace={}", self.ns);
        let want: Vec<String> = node.map(|i| self.node_name(i)).into_iter().collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let list = api.list(&ListParams::default().labels(&selector)).await.expect("list statuses");
            let nodes: Vec<String> = list.items.iter().map(|s| s.status.clone().unwrap_or_default().node).collect();
            if nodes == want {
                return;
            }
            assert!(Instant::now() < deadline, "ServiceL2Status of {service}: {nodes:?}, want {want:?}\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The message of the first event with `reason` on Service `service`
    /// whose message contains `contains`.
    pub async fn wait_event(&self, service: &str, reason: &str, contains: &str) -> Result<String, String> {
        self.wait_event_in(&self.ns, service, reason, contains).await
    }

    /// An event on BGPPeer `peer` (its name without this cluster's prefix).
    pub async fn wait_peer_event(&self, peer: &str, reason: &str) -> Result<String, String> {
        self.wait_event_in(METALLB_NS, &format!("{}-{peer}", self.prefix), reason, "").await
    }

    pub async fn wait_node_event(&self, i: usize, reason: &str) -> Result<String, String> {
        self.wait_event_in("default", &self.node_name(i), reason, "").await
    }

    async fn wait_event_in(&self, ns: &str, object: &str, reason: &str, contains: &str) -> Result<String, String> {
        let api: Api<Event> = Api::namespaced(self.admin.clone(), ns);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let events = api.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
            if let Some(e) = events.items.iter().find(|e| {
                e.involved_object.name.as_deref() == Some(object)
                    && e.reason.as_deref() == Some(reason)
                    && e.message.as_deref().unwrap_or("").contains(contains)
            }) {
                return Ok(e.message.clone().unwrap_or_default());
            }
            if Instant::now() > deadline {
                let seen: Vec<String> = events.items.iter().map(|e| format!("{:?} {:?}", e.reason, e.message)).collect();
                return Err(format!("no {reason} event on {object}; seen {seen:?}\n{}", self.logs()));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the speakers and deletes what this cluster created.
    pub async fn shutdown(mut self) {
        for s in self.speakers.iter_mut() {
            if let Some(mut p) = s.take() {
                let _ = p.kill();
            }
        }
        let pools: Api<IPAddressPool> = Api::namespaced(self.admin.clone(), METALLB_NS);
        for p in 0..POOLS {
            let _ = self.ads().delete(&format!("{}-a{p}", self.prefix), &DeleteParams::default()).await;
            let _ = pools.delete(&format!("{}-p{p}", self.prefix), &DeleteParams::default()).await;
        }
        self.delete_own::<BGPPeer>().await;
        self.delete_own::<BGPAdvertisement>().await;
        self.delete_own::<BFDProfile>().await;
        self.delete_own::<IPAddressPool>().await;
        self.delete_own::<k8s_openapi::api::core::v1::Secret>().await;
        let nodes: Api<Node> = Api::all(self.admin.clone());
        let pods: Api<Pod> = Api::namespaced(self.admin.clone(), METALLB_NS);
        for i in 1..=self.topo.nodes().len() {
            let _ = nodes.delete(&self.node_name(i), &DeleteParams::default()).await;
            let _ = pods.delete(&self.pod_name(i), &DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() }).await;
        }
        let statuses: Api<ServiceL2Status> = Api::namespaced(self.admin.clone(), METALLB_NS);
        let mine = ListParams::default().labels(&format!("metallb.io/service-namespace={}", self.ns));
        let _ = statuses.delete_collection(&DeleteParams::default(), &mine).await;
        let _ = Api::<ServiceBGPStatus>::namespaced(self.admin.clone(), METALLB_NS).delete_collection(&DeleteParams::default(), &mine).await;
        let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(self.admin.clone()).delete(&self.ns, &DeleteParams::default()).await;
    }
}

impl Cluster {
    /// Deletes the objects of kind `K` in the MetalLB namespace whose names
    /// start with this cluster's prefix (what a test added beyond the pools).
    async fn delete_own<K>(&self)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(self.admin.clone(), METALLB_NS);
        let Ok(list) = api.list(&ListParams::default()).await else { return };
        for obj in list.items {
            if let Some(name) = obj.meta().name.as_deref().filter(|n| n.starts_with(&self.prefix)) {
                let _ = api.delete(name, &DeleteParams::default()).await;
            }
        }
    }
}

/// BGP objects a failed test of this binary left behind (a panic skips
/// [`Cluster::shutdown`]): in another mode they would make every later
/// speaker's configuration invalid. Tests of one binary run one at a time.
async fn remove_bgp_leftovers(admin: &Client) {
    let ads: Api<BGPAdvertisement> = Api::namespaced(admin.clone(), METALLB_NS);
    let pools: Api<IPAddressPool> = Api::namespaced(admin.clone(), METALLB_NS);
    if let Ok(list) = ads.list(&ListParams::default()).await {
        for ad in list.items {
            for pool in &ad.spec.ip_address_pools {
                let _ = pools.delete(pool, &DeleteParams::default()).await;
            }
            let _ = ads.delete(&ad.metadata.name.unwrap_or_default(), &DeleteParams::default()).await;
        }
    }
    let _ = Api::<BGPPeer>::namespaced(admin.clone(), METALLB_NS).delete_collection(&DeleteParams::default(), &ListParams::default()).await;
    let _ = Api::<BFDProfile>::namespaced(admin.clone(), METALLB_NS).delete_collection(&DeleteParams::default(), &ListParams::default()).await;
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
