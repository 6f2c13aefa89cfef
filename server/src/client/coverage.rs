//! The `hb` command that reaches each operation of the API (`/api/v1/openapi.json`), so
//! nothing needs curl; `server/tests/cli_coverage.rs` checks it both ways against the
//! document, and that each command parses.

/// Each operation id, with an `hb` command line that calls it (placeholders in capitals).
/// Operations only a browser follows (redirects of external sign-in) name why instead,
/// starting with `browser:`.
pub const OPERATIONS: &[(&str, &str)] = &[
    ("healthz", "hb health --url URL/healthz"),
    ("readyz", "hb health --url URL/readyz"),
    ("openapi", "hb get openapi"),
    ("getAudit", "hb audit --org ORG"),
    ("signup", "hb login URL --signup --email EMAIL --name NAME"),
    ("login", "hb login URL --email EMAIL"),
    ("logout", "hb login URL --email EMAIL"),
    (
        "oidcStart",
        "browser: the redirect to an external identity provider",
    ),
    ("oidcCallback", "browser: the provider's redirect back"),
    ("me", "hb get me"),
    ("listTokens", "hb get tokens"),
    ("createToken", "hb create token NAME"),
    ("deleteToken", "hb delete token ID"),
    ("listOrgs", "hb get orgs"),
    ("createOrg", "hb create org SLUG"),
    ("getOrg", "hb get org SLUG"),
    ("deleteOrg", "hb delete org SLUG"),
    ("listOrgMembers", "hb get members --org ORG"),
    (
        "setOrgMemberRole",
        "hb create member USER --org ORG --role owner",
    ),
    ("removeOrgMember", "hb delete member USER --org ORG"),
    (
        "inviteToOrg",
        "hb create invitation EMAIL --org ORG --role billing",
    ),
    ("acceptInvitation", "hb accept-invitation TOKEN"),
    ("getOrgBilling", "hb get billing --org ORG"),
    ("listWorkspaces", "hb get workspaces --org ORG"),
    (
        "createWorkspace",
        "hb create workspace WS --org ORG --plan PLAN",
    ),
    ("getWorkspace", "hb get workspace WS --org ORG"),
    ("deleteWorkspace", "hb delete workspace WS --org ORG"),
    (
        "changePlan",
        "hb apply workspace WS --org ORG --set plan=PLAN",
    ),
    ("listGroups", "hb get groups --org ORG -w WS"),
    (
        "createGroup",
        "hb create group GROUP --org ORG -w WS --parent PARENT",
    ),
    ("getGroup", "hb get group GROUP --org ORG -w WS"),
    (
        "updateGroup",
        "hb apply group GROUP --org ORG -w WS --set parent=PARENT",
    ),
    ("deleteGroup", "hb delete group GROUP --org ORG -w WS"),
    (
        "listGroupMembers",
        "hb get members --org ORG -w WS --group GROUP",
    ),
    (
        "addGroupMember",
        "hb create member EMAIL --org ORG -w WS --group GROUP",
    ),
    (
        "removeGroupMember",
        "hb delete member USER --org ORG -w WS --group GROUP",
    ),
    (
        "listClusterRoleBindings",
        "hb get clusterrolebindings --org ORG -w WS",
    ),
    (
        "bindClusterRole",
        "hb create clusterrolebinding GROUP --org ORG -w WS --cluster-role CR",
    ),
    (
        "unbindClusterRole",
        "hb delete clusterrolebinding GROUP --org ORG -w WS --cluster-role CR",
    ),
    ("listProjects", "hb get projects --org ORG -w WS"),
    ("createProject", "hb create project PROJECT --org ORG -w WS"),
    ("getProject", "hb get project PROJECT --org ORG -w WS"),
    ("deleteProject", "hb delete project PROJECT --org ORG -w WS"),
    (
        "setProjectQuota",
        "hb apply quota --org ORG -w WS -p PROJECT -f quota.yaml",
    ),
    ("listRoles", "hb get roles --org ORG -w WS -p PROJECT"),
    (
        "createRole",
        "hb create role ROLE --org ORG -w WS -p PROJECT -f role.yaml",
    ),
    ("getRole", "hb get role ROLE --org ORG -w WS -p PROJECT"),
    ("updateRole", "hb edit role ROLE --org ORG -w WS -p PROJECT"),
    (
        "deleteRole",
        "hb delete role ROLE --org ORG -w WS -p PROJECT",
    ),
    (
        "listRoleBindings",
        "hb get rolebindings --org ORG -w WS -p PROJECT",
    ),
    (
        "bindRole",
        "hb create rolebinding GROUP --org ORG -w WS -p PROJECT --role ROLE",
    ),
    (
        "unbindRole",
        "hb delete rolebinding GROUP --org ORG -w WS -p PROJECT --role ROLE",
    ),
    ("listCronJobs", "hb get cronjobs --org ORG -w WS -p PROJECT"),
    (
        "createCronJob",
        "hb create cronjob NAME --org ORG -w WS -p PROJECT -f cronjob.yaml",
    ),
    (
        "getCronJob",
        "hb get cronjob NAME --org ORG -w WS -p PROJECT",
    ),
    (
        "updateCronJob",
        "hb edit cronjob NAME --org ORG -w WS -p PROJECT",
    ),
    (
        "deleteCronJob",
        "hb delete cronjob NAME --org ORG -w WS -p PROJECT",
    ),
    (
        "listFunctions",
        "hb get functions --org ORG -w WS -p PROJECT",
    ),
    (
        "createFunction",
        "hb create function NAME --org ORG -w WS -p PROJECT -f function.yaml",
    ),
    (
        "getFunction",
        "hb get function NAME --org ORG -w WS -p PROJECT",
    ),
    (
        "updateFunction",
        "hb apply function NAME --org ORG -w WS -p PROJECT -f function.yaml",
    ),
    (
        "deleteFunction",
        "hb delete function NAME --org ORG -w WS -p PROJECT",
    ),
    ("getIssuer", "hb get issuer"),
    ("getKubeconfig", "hb kubeconfig ORG/WS"),
    ("rotateSigningKeys", "hb admin rotate-keys"),
    ("getPlatform", "hb get platform"),
    ("setPlatform", "hb apply -f platform.yaml"),
    (
        "setPlatformCluster",
        "hb apply cluster CLUSTER -f cluster.yaml",
    ),
    ("setPlatformPlan", "hb apply plan PLAN -f plan.yaml"),
    ("setPlanPrice", "hb apply price PLAN --set monthly=2900"),
    ("listPlans", "hb get plans"),
    ("listClusters", "hb get clusters"),
];
