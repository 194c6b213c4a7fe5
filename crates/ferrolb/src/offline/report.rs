//! The plan's output document (cli-contract.md, "JSON output") and its three
//! renderings. Field names and order are part of the contract.

use std::fmt::Write as _;

use serde::Serialize;

use crate::cli::OutputFormat;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Plan {
    pub services: Vec<ServicePlan>,
    pub pools: Vec<PoolPlan>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Assigned,
    Pending,
    Ignored,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Assigned => "assigned",
            Status::Pending => "pending",
            Status::Ignored => "ignored",
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ServicePlan {
    pub namespace: String,
    pub name: String,
    pub status: Status,
    /// IPv4 before IPv6, as the contract requires.
    pub ips: Vec<String>,
    pub pool: Option<String>,
    /// Present for `pending` and `ignored` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PoolPlan {
    pub name: String,
    #[serde(rename = "assignedIPv4")]
    pub assigned_ipv4: i64,
    #[serde(rename = "availableIPv4")]
    pub available_ipv4: i64,
    #[serde(rename = "assignedIPv6")]
    pub assigned_ipv6: i64,
    #[serde(rename = "availableIPv6")]
    pub available_ipv6: i64,
}

pub fn render(plan: &Plan, format: OutputFormat) -> Result<String, RenderError> {
    match format {
        OutputFormat::Json => {
            let mut text = serde_json::to_string_pretty(plan)?;
            text.push('\n');
            Ok(text)
        }
        OutputFormat::Yaml => Ok(serde_saphyr::to_string(plan)?),
        OutputFormat::Table => Ok(table(plan)),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("rendering JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("rendering YAML: {0}")]
    Yaml(#[from] serde_saphyr::ser::Error),
}

/// Human table: services, then pools. Columns are padded to their widest cell;
/// the reason stays last so long texts do not push other columns apart.
fn table(plan: &Plan) -> String {
    let mut out = String::new();
    let service_rows: Vec<Vec<String>> = plan
        .services
        .iter()
        .map(|s| {
            vec![
                s.namespace.clone(),
                s.name.clone(),
                s.status.as_str().to_string(),
                if s.ips.is_empty() { "-".into() } else { s.ips.join(",") },
                s.pool.clone().unwrap_or_else(|| "-".into()),
                s.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    write_table(
        &mut out,
        &["NAMESPACE", "NAME", "STATUS", "IPS", "POOL", "REASON"],
        &service_rows,
    );
    out.push('\n');
    let pool_rows: Vec<Vec<String>> = plan
        .pools
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.assigned_ipv4.to_string(),
                p.available_ipv4.to_string(),
                p.assigned_ipv6.to_string(),
                p.available_ipv6.to_string(),
            ]
        })
        .collect();
    write_table(
        &mut out,
        &["POOL", "ASSIGNED IPV4", "AVAILABLE IPV4", "ASSIGNED IPV6", "AVAILABLE IPV6"],
        &pool_rows,
    );
    out
}

fn write_table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 == widths.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}   ", w = widths[i]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}
