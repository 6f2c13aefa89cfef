//! The workload of the benchmarks: an intent tree of many workspaces. Shared by
//! `compiler/benches/compile.rs` and the server's benches (`server/benches/common/`), which
//! include this file with `#[path]`, so both measure the same repository.

use std::fmt::Write as _;

use compiler::intent::IntentFiles;

/// The example platform: two clusters (`home`, `edge`) and two plans.
const PLATFORM: &str = include_str!("../../../gitops-repo-example/intent/platform.yaml");
const CLUSTERS: [&str; 2] = ["home", "edge"];
const PLANS: [&str; 2] = ["shared-small", "dedicated-large"];
pub(crate) const ORGANIZATIONS: usize = 100;

/// Organization and workspace of workspace number `i`, and its cluster and plan.
pub(crate) fn placement(i: usize) -> (String, String, &'static str, &'static str) {
    let org = format!("org-{:03}", i % ORGANIZATIONS);
    let ws = format!("ws-{i:05}");
    let cluster = CLUSTERS[(i / ORGANIZATIONS) % 2];
    let plan = PLANS[(i / (2 * ORGANIZATIONS)) % 2];
    (org, ws, cluster, plan)
}

/// An intent tree of `n` workspaces, spread over [`ORGANIZATIONS`] organizations, both clusters
/// and both plans. Each workspace: 5 projects, 3 custom roles, 2 Functions, 1 CronJob.
pub(crate) fn workload(n: usize) -> IntentFiles {
    let mut files = IntentFiles::new();
    files.insert("platform.yaml".into(), PLATFORM.into());
    for o in 0..ORGANIZATIONS.min(n) {
        let org = format!("org-{o:03}");
        files.insert(
            format!("{org}/organization.yaml"),
            format!(
                "apiVersion: hexabase.ai/v1alpha1\nkind: Organization\nmetadata:\n  name: {org}\n\
                 spec:\n  displayName: Organization {o}\n"
            ),
        );
    }
    for i in 0..n {
        let (org, ws, cluster, plan) = placement(i);
        let dir = format!("{org}/{ws}");
        let dedicated = plan == "dedicated-large";
        let mut text =
            format!("apiVersion: hexabase.ai/v1alpha1\nkind: Workspace\nmetadata:\n  name: {ws}\n");
        if dedicated {
            text.push_str("  labels:\n    environment: production\n");
        }
        write!(
            text,
            "spec:\n  displayName: Workspace {i} of {org}\n  plan: {plan}\n  cluster: {cluster}\n\
             \x20 clusterRoleBindings:\n    - group: WorkspaceMembers\n      clusterRole: hexabase:workspace-viewer\n"
        )
        .expect("writing to a String cannot fail");
        if dedicated {
            write!(
                text,
                "  dedicatedNodes:\n    nodeSelector:\n      hexabase.ai/tenant: {org}\n"
            )
            .expect("writing to a String cannot fail");
        }
        files.insert(format!("{dir}/workspace.yaml"), text);
        for (project, body) in projects(&org, &ws) {
            let text = format!(
                "apiVersion: hexabase.ai/v1alpha1\nkind: Project\nmetadata:\n  name: {project}\n{body}"
            );
            files.insert(format!("{dir}/projects/{project}.yaml"), text);
        }
    }
    files
}

/// The five projects of one workspace (name, the document after `metadata.name`).
fn projects(org: &str, ws: &str) -> [(&'static str, String); 5] {
    [
        (
            "web",
            format!(
                r#"  labels:
    team: frontend
spec:
  displayName: Web shop of {org}
  quota:
    requestsCpu: "4"
  roles:
    - name: deployer
      rules:
        - apiGroups: ["apps"]
          resources: ["deployments", "replicasets"]
          verbs: ["get", "list", "watch", "create", "update", "patch"]
        - apiGroups: [""]
          resources: ["pods", "pods/log", "services", "configmaps"]
          verbs: ["get", "list", "watch"]
  roleBindings:
    - group: WSUsers
      role: deployer
    - group: WSAdmins
      clusterRole: hexabase:workspace-admin
  functions:
    - name: checkout
      image: ghcr.io/{org}/checkout-fn:2.0.1
      port: 8080
      env:
        - name: CURRENCY
          value: EUR
        - name: WORKSPACE
          value: {ws}
      scaling:
        minScale: 0
        maxScale: 10
        target: 50
      resources:
        cpu: 100m
        memory: 256Mi
"#
            ),
        ),
        (
            "api",
            format!(
                r#"spec:
  roles:
    - name: reader
      rules:
        - apiGroups: ["", "apps", "batch"]
          resources: ["pods", "deployments", "jobs", "cronjobs"]
          verbs: ["get", "list", "watch"]
  roleBindings:
    - group: WorkspaceMembers
      role: reader
  functions:
    - name: webhook
      image: ghcr.io/{org}/webhook:1.0.0
      scaling:
        maxScale: 3
"#
            ),
        ),
        (
            "batch",
            format!(
                r#"spec:
  displayName: Scheduled jobs
  roles:
    - name: job-runner
      rules:
        - apiGroups: ["batch"]
          resources: ["jobs", "cronjobs"]
          verbs: ["get", "list", "watch", "create", "delete"]
  roleBindings:
    - group: WSUsers
      role: job-runner
  cronJobs:
    - name: nightly-report
      schedule: "0 3 * * *"
      timeZone: Europe/Berlin
      image: ghcr.io/{org}/reporter:1.4.2
      args: ["--since", "24h", "--workspace", "{ws}"]
      env:
        - name: REPORT_BUCKET
          value: s3://{org}-reports
      resources:
        cpu: 100m
        memory: 128Mi
"#
            ),
        ),
        (
            "data",
            r#"spec:
  quota:
    requestsMemory: 8Gi
  roleBindings:
    - group: WSUsers
      clusterRole: hexabase:workspace-viewer
"#
            .to_owned(),
        ),
        ("ops", "spec:\n  displayName: Operations\n".to_owned()),
    ]
}
