//! The reason of an `ignored` Service (cli-contract.md): why the controller
//! leaves it alone and, when the input shows addresses on it, whose they are.
//! Those addresses are never listed as the Service's `ips`: they are not
//! ferrolb's.

use ferrolb_allocator::ServiceView;

/// `why` is the allocator's reason (`not of type LoadBalancer`, or the
/// load-balancer class it does not handle); `input` is the Service as read,
/// before any pass touched its status; `lb_class` is `--lb-class`.
pub fn reason(why: &str, input: &ServiceView, lb_class: Option<&str>) -> String {
    if input.ingress_ips.is_empty() {
        return why.to_string();
    }
    let ips = input.ingress_ips.join(", ");
    if input.handled_by(lb_class) {
        // Ours by class but not a LoadBalancer: whose the addresses were is
        // unknown; what the controller does with them is not.
        return format!("{why}; the controller clears the addresses left in its status ({ips})");
    }
    match &input.load_balancer_class {
        Some(class) => {
            format!("{why}; its addresses {ips} belong to the load-balancer implementation of class {class:?}")
        }
        None => format!(
            "{why}; its addresses {ips} belong to the cluster's default load-balancer implementation (the one for Services without a class)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(type_: &str, class: Option<&str>, ips: &[&str]) -> ServiceView {
        ServiceView {
            namespace: "a".into(),
            name: "s".into(),
            type_: Some(type_.into()),
            load_balancer_class: class.map(str::to_string),
            ingress_ips: ips.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn without_addresses_the_reason_is_unchanged() {
        assert_eq!(reason("not of type LoadBalancer", &view("ClusterIP", None, &[]), None), "not of type LoadBalancer");
    }

    #[test]
    fn another_class_owns_its_addresses() {
        let r = reason("other class", &view("LoadBalancer", Some("example.com/lb"), &["10.0.0.5", "fc00::5"]), None);
        assert_eq!(
            r,
            "other class; its addresses 10.0.0.5, fc00::5 belong to the load-balancer implementation of class \"example.com/lb\""
        );
        let r = reason("no class", &view("LoadBalancer", None, &["10.0.0.5"]), Some("example.com/lb"));
        assert!(r.ends_with("its addresses 10.0.0.5 belong to the cluster's default load-balancer implementation (the one for Services without a class)"), "{r}");
    }

    #[test]
    fn a_non_load_balancer_of_another_class_is_that_class_s() {
        let r = reason("other class", &view("NodePort", Some("x.io/lb"), &["10.0.0.5"]), None);
        assert!(r.ends_with("belong to the load-balancer implementation of class \"x.io/lb\""), "{r}");
    }

    #[test]
    fn a_non_load_balancer_status_is_cleared() {
        let r = reason("not of type LoadBalancer", &view("NodePort", None, &["10.0.0.5"]), None);
        assert_eq!(r, "not of type LoadBalancer; the controller clears the addresses left in its status (10.0.0.5)");
    }
}
