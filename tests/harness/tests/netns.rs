//! The speaker test bed against the real kernel and the real API server:
//! namespaces on a bridge, the fixture relayed into them, kubelet-made
//! objects, the speaker's ServiceAccount under the shipped RBAC, and the
//! router-side probes. Needs root, iproute2, arping and python3
//! (scripts/test.sh installs them).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use ferrolb_test_harness::identity::{Identity, METALLB_NAMESPACE, apply_deploy_rbac};
use ferrolb_test_harness::kubelet::{
    EndpointOnNode, apply_endpoint_slice, create_ready_node, create_speaker_pod, delete_pod,
    set_node_condition, speaker_label_selector,
};
use ferrolb_test_harness::netns::{NetNs, Topology, unique_prefix};
use ferrolb_test_harness::probe::{
    TcpOutcome, arp_answers, arp_who_has, flush_neigh, ndp_who_has, neigh, tcp_connect,
    watch_first_answer,
};
use ferrolb_test_harness::relay::{Relay, server_port};
use ferrolb_test_harness::{create_namespace, shared, unique_name};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 200);

fn topology(nodes: usize) -> Result<Topology> {
    Ok(Topology::new(&unique_prefix("hn"), nodes)?)
}

fn ping(ns: &NetNs, ip: IpAddr) -> Result<bool> {
    let out = ns.output("ping", &["-c", "1", "-W", "1", &ip.to_string()])?;
    Ok(out.status.success())
}

fn netns_exists(name: &str) -> bool {
    PathBuf::from("/run/netns").join(name).exists()
}

#[test]
fn topology_connects_the_router_to_every_node_and_is_removed_on_drop() -> Result<()> {
    let topo = topology(3)?;
    let names: Vec<String> = std::iter::once(topo.lan().name().to_owned())
        .chain(std::iter::once(topo.router().ns.name().to_owned()))
        .chain(topo.nodes().iter().map(|n| n.ns.name().to_owned()))
        .collect();
    for name in &names {
        ensure!(netns_exists(name), "{name} missing");
    }
    let router = &topo.router().ns;
    for node in topo.nodes() {
        ensure!(
            ping(router, IpAddr::V4(node.ipv4))?,
            "no IPv4 reply from {}",
            node.role
        );
        ensure!(
            ping(router, IpAddr::V6(node.ipv6))?,
            "no IPv6 reply from {}",
            node.role
        );
        let entry = neigh(router, IpAddr::V4(node.ipv4))?.context("no neighbour entry")?;
        ensure!(entry.mac == node.mac, "{} resolved to {entry:?}", node.role);
        // The kernel answers for its own eth0 addresses, on both families.
        ensure!(arp_who_has(router, node.ipv4)?.as_deref() == Some(node.mac.as_str()));
        let nd = ndp_who_has(router, node.ipv6, Duration::from_millis(500))?;
        ensure!(
            nd.as_deref() == Some(node.mac.as_str()),
            "NDP for {}: {nd:?}",
            node.ipv6
        );
        // Settings the layer 2 tests depend on (test-peers.md §2).
        ensure!(
            node.ns
                .read_sysctl("net.ipv6.conf.eth0.keep_addr_on_down")?
                == "1"
        );
        ensure!(node.ns.read_sysctl("net.ipv6.conf.eth0.accept_dad")? == "0");
    }
    // An IPv6 address survives link down/up (keep_addr_on_down).
    let node2 = topo.node(2);
    node2.ns.set_link("eth0", false)?;
    node2.ns.set_link("eth0", true)?;
    let addrs = node2.ns.run("ip", &["-6", "-br", "addr", "show", "eth0"])?;
    ensure!(String::from_utf8_lossy(&addrs.stdout).contains(&node2.ipv6.to_string()));

    drop(topo);
    for name in &names {
        ensure!(!netns_exists(name), "{name} left behind");
    }
    Ok(())
}

#[test]
fn a_second_topology_with_the_same_prefix_is_refused_and_the_first_survives() -> Result<()> {
    let prefix = unique_prefix("hn");
    let first = Topology::new(&prefix, 1)?;
    ensure!(
        Topology::new(&prefix, 1).is_err(),
        "same prefix accepted twice"
    );
    ensure!(
        netns_exists(first.lan().name()),
        "the failed build removed the first topology"
    );
    ensure!(ping(&first.router().ns, IpAddr::V4(first.node(1).ipv4))?);
    Ok(())
}

#[test]
fn a_vip_on_lo_is_answered_by_the_node_until_arp_ignore_or_link_down() -> Result<()> {
    let topo = topology(2)?;
    let (router, node1) = (&topo.router().ns, topo.node(1));
    ensure!(
        arp_who_has(router, VIP)?.is_none(),
        "someone answers before the VIP exists"
    );

    // Default arp_ignore=0: Linux answers ARP for any local address on any
    // interface (test-peers.md §3.8 (1)).
    node1.ns.add_lo_address(IpAddr::V4(VIP))?;
    ensure!(arp_who_has(router, VIP)?.as_deref() == Some(node1.mac.as_str()));
    ensure!(
        arp_answers(router, VIP, 2)? == [node1.mac.clone()],
        "exactly one owner"
    );
    // Traffic reaches node1: nothing listens on port 9, so a RST comes back.
    let outcome = tcp_connect(
        router,
        SocketAddr::new(IpAddr::V4(VIP), 9),
        Duration::from_secs(2),
    )?;
    ensure!(outcome == TcpOutcome::Refused, "{outcome:?}");

    node1.ns.set_link("eth0", false)?;
    ensure!(
        arp_who_has(router, VIP)?.is_none(),
        "answered with node1's link down"
    );
    node1.ns.set_link("eth0", true)?;
    ensure!(arp_who_has(router, VIP)?.as_deref() == Some(node1.mac.as_str()));

    // arp_ignore=1 (kube-proxy IPVS's setting) silences the kernel, which
    // is what leaves the VIP to the speaker.
    node1.ns.sysctl(&[
        ("net.ipv4.conf.all.arp_ignore", "1"),
        ("net.ipv4.conf.all.arp_announce", "2"),
    ])?;
    ensure!(
        arp_who_has(router, VIP)?.is_none(),
        "kernel answers despite arp_ignore=1"
    );

    // IPv6: the kernel answers NS only for addresses on the receiving
    // interface, so a VIP on lo is silent.
    let vip6: Ipv6Addr = "2001:db8::200".parse()?;
    node1.ns.add_lo_address(IpAddr::V6(vip6))?;
    ensure!(ndp_who_has(router, vip6, Duration::from_millis(500))?.is_none());
    node1.ns.del_lo_address(IpAddr::V6(vip6))?;
    Ok(())
}

#[test]
fn two_owners_are_both_reported() -> Result<()> {
    let topo = topology(2)?;
    for n in [1, 2] {
        topo.node(n).ns.add_lo_address(IpAddr::V4(VIP))?;
    }
    let mut macs = arp_answers(&topo.router().ns, VIP, 3)?;
    macs.sort();
    ensure!(
        macs == [topo.node(1).mac.clone(), topo.node(2).mac.clone()],
        "{macs:?}"
    );
    Ok(())
}

/// Runs `action` while a watcher (10 s deadline, ignoring `old_mac`) asks
/// the router's question every 20 ms; returns the watcher's answer.
fn watch_while(
    topo: &Topology,
    old_mac: &str,
    action: impl FnOnce() -> Result<()> + Send,
) -> Result<Option<ferrolb_test_harness::probe::ArpAnswer>> {
    std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            watch_first_answer(
                topo.router(),
                VIP,
                old_mac,
                Instant::now() + Duration::from_secs(10),
            )
        });
        // Let the first requests go out before anything changes.
        std::thread::sleep(Duration::from_millis(300));
        let acted = action();
        let answer = watcher
            .join()
            .map_err(|_| anyhow::anyhow!("watcher panicked"))?;
        acted?;
        Ok(answer?)
    })
}

#[test]
fn the_watcher_returns_when_another_node_takes_the_address_over() -> Result<()> {
    let topo = topology(2)?;
    let (node1, node2) = (topo.node(1), topo.node(2));
    node1.ns.add_lo_address(IpAddr::V4(VIP))?;

    // node1 answers throughout: the watcher must not return for it.
    let early = watch_first_answer(
        topo.router(),
        VIP,
        &node1.mac,
        Instant::now() + Duration::from_millis(300),
    )?;
    ensure!(early.is_none(), "returned for the ignored owner: {early:?}");

    let (switched_tx, switched_rx) = std::sync::mpsc::channel();
    let answer = watch_while(&topo, &node1.mac, || {
        node1.ns.set_link("eth0", false)?;
        // Taken before the address exists: node2 may answer before
        // `ip addr add` has even exited.
        switched_tx.send(Instant::now())?;
        node2.ns.add_lo_address(IpAddr::V4(VIP))?;
        Ok(())
    })?;
    let switched = switched_rx.recv()?;
    let answer = answer.context("no answer from node2 within 10 s")?;
    ensure!(answer.mac == node2.mac, "{answer:?}");
    ensure!(
        !answer.gratuitous,
        "the kernel does not send gratuitous ARP here"
    );
    ensure!(answer.at >= switched, "answer before the switch");
    // A request goes out every 20 ms; a sanity bound, not a benchmark.
    ensure!(
        answer.at - switched < Duration::from_secs(2),
        "took {:?}",
        answer.at - switched
    );
    Ok(())
}

#[test]
fn the_watcher_reports_a_gratuitous_arp_from_the_new_owner() -> Result<()> {
    let topo = topology(2)?;
    let (node1, node2) = (topo.node(1), topo.node(2));
    node1.ns.add_lo_address(IpAddr::V4(VIP))?;
    let vip = VIP.to_string();
    let answer = watch_while(&topo, &node1.mac, || {
        // Habets' arping: -U unsolicited (gratuitous) request with sender
        // IP = target IP = the VIP (test-peers.md §3.5). No reply comes, so
        // it exits 1.
        node2.ns.output(
            "arping",
            &["-q", "-U", "-S", &vip, "-i", "eth0", "-c", "1", &vip],
        )?;
        Ok(())
    })?;
    let answer = answer.context("the gratuitous ARP was not seen")?;
    ensure!(answer.mac == node2.mac, "{answer:?}");
    ensure!(answer.gratuitous, "{answer:?}");
    Ok(())
}

#[test]
fn a_spawned_process_group_is_killed_and_the_namespace_stays_usable() -> Result<()> {
    let topo = topology(1)?;
    let node = &topo.node(1).ns;
    let log = std::env::temp_dir().join(format!("{}-sleep.log", topo.prefix()));
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "sleep 600 & echo started; sleep 600"]);
    let mut proc = node.spawn(&cmd, &log)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while node.pids()?.len() < 3 {
        ensure!(
            Instant::now() < deadline,
            "pids in netns: {:?}",
            node.pids()?
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    ensure!(node.pids()?.contains(&i32::try_from(proc.pid())?));
    proc.kill()?;
    // The background sleep was in the same group, so it is gone too.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !node.pids()?.is_empty() {
        ensure!(
            Instant::now() < deadline,
            "left in netns: {:?}",
            node.pids()?
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    ensure!(proc.try_wait()?.is_some());
    ensure!(std::fs::read_to_string(&log)?.contains("started"));
    let _ = std::fs::remove_file(&log);
    Ok(())
}

/// kubectl of the fixture run inside `ns` with `kubeconfig`.
fn kubectl_in(
    ns: &NetNs,
    kubectl: &std::path::Path,
    kubeconfig: &std::path::Path,
    args: &[&str],
) -> Result<std::process::Output> {
    let mut all = vec![
        "--kubeconfig",
        kubeconfig.to_str().context("path")?,
        "--request-timeout=10s",
    ];
    all.extend_from_slice(args);
    Ok(ns.output(kubectl.to_str().context("path")?, &all)?)
}

#[tokio::test]
async fn the_relay_makes_the_fixture_reachable_inside_a_node_namespace() -> Result<()> {
    let fixture = shared().await?;
    let port = server_port(fixture.server_url())?;
    let topo = topology(2)?;
    let (node1, node2) = (&topo.node(1).ns, &topo.node(2).ns);
    let loopback = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);

    // Without a relay the fixture is not there: a namespace has its own lo.
    let outcome = tcp_connect(node2, loopback, Duration::from_secs(2))?;
    ensure!(outcome == TcpOutcome::Refused, "{outcome:?}");

    let relay = Relay::start(node1, port)?;
    ensure!(relay.listen_addr() == loopback);
    let kubectl = fixture.kubectl_path();
    let admin = fixture.kubeconfig_path();
    let out = kubectl_in(node1, kubectl, admin, &["get", "--raw", "/healthz"])?;
    ensure!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "kubectl in {}: {}",
        node1.name(),
        String::from_utf8_lossy(&out.stderr)
    );

    // A watching client killed mid-stream, as a SIGKILLed speaker is, does
    // not take the relay down.
    let log = std::env::temp_dir().join(format!("{}-watch.log", topo.prefix()));
    let mut cmd = Command::new(kubectl);
    cmd.arg("--kubeconfig")
        .arg(admin)
        .args(["get", "namespaces", "--watch"]);
    let mut watch = node1.spawn(&cmd, &log)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("default")
    {
        ensure!(
            Instant::now() < deadline,
            "watch printed nothing: {}",
            std::fs::read_to_string(&log)?
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watch.kill()?;
    let _ = std::fs::remove_file(&log);
    let out = kubectl_in(node1, kubectl, admin, &["get", "--raw", "/healthz"])?;
    ensure!(
        out.status.success(),
        "after the kill: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(relay.accepted() >= 3, "accepted {}", relay.accepted());

    drop(relay);
    let outcome = tcp_connect(node1, loopback, Duration::from_secs(2))?;
    ensure!(
        outcome == TcpOutcome::Refused,
        "still listening after drop: {outcome:?}"
    );
    Ok(())
}

#[tokio::test]
async fn the_speaker_identity_has_the_shipped_rbac_and_no_more() -> Result<()> {
    let fixture = shared().await?;
    let admin = fixture.client()?;
    apply_deploy_rbac(&admin).await?;
    let ns = unique_name("hn-rbac");
    create_namespace(&admin, &ns).await?;
    let services: Api<Service> = Api::namespaced(admin.clone(), &ns);
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
    }))?;
    services.create(&PostParams::default(), &svc).await?;

    let speaker = Identity::speaker().client(fixture, &ns).await?;
    let as_speaker: Api<Service> = Api::namespaced(speaker.clone(), &ns);
    let listed = as_speaker.list(&ListParams::default()).await?;
    ensure!(
        listed.items.len() == 1,
        "speaker sees {} services",
        listed.items.len()
    );
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.200"}]}}});
    let err = as_speaker
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .err()
        .context("the speaker identity wrote a Service status")?;
    match err {
        kube::Error::Api(s) if s.code == 403 => {}
        other => bail!("expected 403, got {other:?}"),
    }
    // The pod-lister Role: pods of metallb-system, not of other namespaces.
    let pods: Api<Pod> = Api::namespaced(speaker.clone(), METALLB_NAMESPACE);
    pods.list(&ListParams::default())
        .await
        .context("listing speaker pods")?;
    let other: Api<Pod> = Api::namespaced(speaker, &ns);
    ensure!(
        other.list(&ListParams::default()).await.is_err(),
        "pods listed outside metallb-system"
    );

    // The same identity as a kubeconfig file, used through a relay from a
    // node namespace, as a speaker process would.
    let topo = topology(1)?;
    let node = &topo.node(1).ns;
    let _relay = Relay::start(node, server_port(fixture.server_url())?)?;
    let path = std::env::temp_dir().join(format!("{}-speaker.kubeconfig", topo.prefix()));
    Identity::speaker().write_kubeconfig(fixture, &path)?;
    let kubectl = fixture.kubectl_path();
    let whoami = kubectl_in(
        node,
        kubectl,
        &path,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    )?;
    ensure!(
        String::from_utf8_lossy(&whoami.stdout) == "system:serviceaccount:metallb-system:speaker",
        "whoami: {} {}",
        String::from_utf8_lossy(&whoami.stdout),
        String::from_utf8_lossy(&whoami.stderr)
    );
    for (verb, resource, expected) in [
        ("list", "services", "yes"),
        ("watch", "endpointslices.discovery.k8s.io", "yes"),
        ("update", "services/status", "no"),
        ("create", "services", "no"),
    ] {
        let out = kubectl_in(
            node,
            kubectl,
            &path,
            &["auth", "can-i", verb, resource, "-A"],
        )?;
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        ensure!(answer == expected, "can-i {verb} {resource}: {answer:?}");
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}

#[tokio::test]
async fn kubelet_objects_look_like_a_kubelets() -> Result<()> {
    let fixture = shared().await?;
    let admin = fixture.client()?;
    apply_deploy_rbac(&admin).await?;
    let node_name = unique_name("hn-node");
    let ip: IpAddr = "198.51.100.11".parse()?;
    create_ready_node(&admin, &node_name, &[("zone", "a")], &[ip]).await?;
    let nodes: Api<Node> = Api::all(admin.clone());
    let node = nodes.get(&node_name).await?;
    let labels = node.metadata.labels.clone().unwrap_or_default();
    ensure!(
        labels.get("zone").map(String::as_str) == Some("a"),
        "{labels:?}"
    );
    let status = node.status.context("node has no status")?;
    let addresses = status.addresses.unwrap_or_default();
    ensure!(
        addresses
            .iter()
            .any(|a| a.type_ == "InternalIP" && a.address == "198.51.100.11")
    );
    let ready = |n: &Node, t: &str| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == t))
            .map(|c| c.status.clone())
    };
    let node = nodes.get(&node_name).await?;
    ensure!(ready(&node, "Ready").as_deref() == Some("True"));
    ensure!(ready(&node, "NetworkUnavailable").as_deref() == Some("False"));
    let node = set_node_condition(&admin, &node_name, "Ready", false).await?;
    ensure!(ready(&node, "Ready").as_deref() == Some("False"));
    ensure!(
        ready(&node, "NetworkUnavailable").as_deref() == Some("False"),
        "other condition lost"
    );

    // The speaker Pod, found the way MetalLB's memberlist finds its peers:
    // by label in metallb-system, with the node's IP as pod IP.
    let pod_name = unique_name("speaker");
    create_speaker_pod(&admin, METALLB_NAMESPACE, &pod_name, &node_name, &[ip]).await?;
    let speaker = Identity::speaker()
        .client(fixture, METALLB_NAMESPACE)
        .await?;
    let pods: Api<Pod> = Api::namespaced(speaker, METALLB_NAMESPACE);
    let found = pods
        .list(&ListParams::default().labels(&speaker_label_selector()))
        .await?;
    let pod = found
        .items
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(pod_name.as_str()))
        .context("speaker pod not found by its labels")?;
    let pod_status = pod.status.as_ref().context("pod has no status")?;
    ensure!(pod_status.phase.as_deref() == Some("Running"));
    ensure!(pod_status.pod_ip.as_deref() == Some("198.51.100.11"));
    ensure!(pod_status.host_ip.as_deref() == Some("198.51.100.11"));
    ensure!(pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node_name.as_str()));
    delete_pod(&admin, METALLB_NAMESPACE, &pod_name).await?;
    let admin_pods: Api<Pod> = Api::namespaced(admin.clone(), METALLB_NAMESPACE);
    ensure!(
        admin_pods.get_opt(&pod_name).await?.is_none(),
        "pod still there after delete"
    );

    let ns = unique_name("hn-eps");
    create_namespace(&admin, &ns).await?;
    let endpoints = [
        EndpointOnNode::ready("10.244.1.5".parse()?, &node_name),
        EndpointOnNode {
            ready: false,
            serving: false,
            ..EndpointOnNode::ready("10.244.2.5".parse()?, "other")
        },
    ];
    apply_endpoint_slice(&admin, &ns, "web", "web-abc", &endpoints, 8080).await?;
    let slices: Api<EndpointSlice> = Api::namespaced(admin.clone(), &ns);
    let by_service = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await?;
    ensure!(by_service.items.len() == 1);
    let slice = &by_service.items[0];
    ensure!(slice.address_type == "IPv4");
    ensure!(slice.endpoints.len() == 2);
    ensure!(slice.endpoints[0].node_name.as_deref() == Some(node_name.as_str()));
    ensure!(
        slice.endpoints[1]
            .conditions
            .as_ref()
            .and_then(|c| c.serving)
            == Some(false)
    );
    let v6 = [EndpointOnNode::ready("fd00::5".parse()?, &node_name)];
    let stored = apply_endpoint_slice(&admin, &ns, "web", "web-v6", &v6, 8080).await?;
    ensure!(stored.address_type == "IPv6");
    let mixed = [endpoints[0].clone(), v6[0].clone()];
    ensure!(
        apply_endpoint_slice(&admin, &ns, "web", "web-x", &mixed, 8080)
            .await
            .is_err()
    );
    Ok(())
}

#[test]
fn flush_neigh_empties_the_routers_table() -> Result<()> {
    let topo = topology(1)?;
    let (router, node1) = (&topo.router().ns, topo.node(1));
    ensure!(ping(router, IpAddr::V4(node1.ipv4))?);
    ensure!(neigh(router, IpAddr::V4(node1.ipv4))?.is_some());
    flush_neigh(router)?;
    let entry = neigh(router, IpAddr::V4(node1.ipv4))?;
    ensure!(entry.is_none(), "{entry:?}");
    Ok(())
}

#[test]
fn namespaces_left_by_a_dead_test_process_are_reaped() -> Result<()> {
    // A pid that is certainly gone: a child that has exited and been reaped.
    let mut child = Command::new("true").spawn()?;
    let dead = child.id();
    child.wait()?;
    let base = format!("hn-reap{}", std::process::id());
    let stale = NetNs::named(format!("{base}-{dead}-0-node1"));
    let out = Command::new("ip")
        .args(["netns", "add", stale.name()])
        .output()?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::env::temp_dir().join(format!("{}.log", stale.name()));
    let mut cmd = Command::new("sleep");
    cmd.arg("600");
    let mut orphan = stale.spawn(&cmd, &log)?;
    let _ = std::fs::remove_file(&log);

    let fresh = unique_prefix(&base);
    ensure!(fresh.starts_with(&format!("{base}-{}-", std::process::id())));
    ensure!(!netns_exists(stale.name()), "{} not reaped", stale.name());
    let deadline = Instant::now() + Duration::from_secs(5);
    while orphan.try_wait()?.is_none() {
        ensure!(
            Instant::now() < deadline,
            "the process inside was not killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
