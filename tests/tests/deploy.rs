//! `scripts/validate-deploy` accepts the real deploy/ and docker-compose.yml, and rejects a copy
//! broken on purpose in each way CI must catch: wrong types, unknown fields, a custom resource
//! that is wrong or has no schema, a grace period shorter than the worker's drain, a Helm value
//! the chart's schema refuses, a chart that no longer renders what kustomize renders, an alert
//! rule promtool refuses or whose unit test fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vidq_tests::unique;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// A private copy of deploy/ and docker-compose.yml, removed on drop.
struct Copy {
    root: PathBuf,
}

impl Copy {
    fn new() -> Self {
        let root = std::env::temp_dir().join(unique("vidq-deploy-test"));
        let repo = repo_root();
        copy_dir(&repo.join("deploy"), &root.join("deploy"));
        fs::copy(
            repo.join("docker-compose.yml"),
            root.join("docker-compose.yml"),
        )
        .expect("copy docker-compose.yml");
        Self { root }
    }

    /// Replaces the one occurrence of `from` in `file` (relative to the copy's root).
    fn edit(&self, file: &str, from: &str, to: &str) -> &Self {
        let path = self.root.join(file);
        let text = fs::read_to_string(&path).expect("read the file to break");
        assert_eq!(
            text.matches(from).count(),
            1,
            "{file} should hold {from:?} exactly once"
        );
        fs::write(&path, text.replace(from, to)).expect("write the broken file");
        self
    }

    fn validate(&self) -> Output {
        Command::new(repo_root().join("scripts/validate-deploy"))
            .arg(&self.root)
            .output()
            .expect("run scripts/validate-deploy")
    }

    /// Asserts validation fails and names what is wrong.
    fn assert_rejected(&self, needles: &[&str]) {
        let out = self.validate();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "a broken copy passed validation: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "stderr lacks {needle:?}:\n{stderr}"
            );
        }
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create dir");
    for entry in fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

const WORKER: &str = "deploy/k8s/base/worker-deployment.yaml";
const SCALED_OBJECT: &str = "deploy/k8s/overlays/keda/scaledobject.yaml";
const VALUES: &str = "deploy/helm/vidq/values.yaml";
const RULES: &str = "deploy/prometheus/rules.yaml";

#[test]
fn the_real_manifests_and_compose_file_pass() {
    let copy = Copy::new();
    let out = copy.validate();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every overlay was rendered and the custom resources were checked, not skipped.
    assert!(stdout.contains("ok: 3 kustomizations"), "{stdout}");
    assert!(!stdout.contains("(0 custom resources)"), "{stdout}");
    assert!(stdout.contains("and 6 Helm chart variants"), "{stdout}");
    assert!(
        stdout.contains("alert rules (promtool check and test)"),
        "{stdout}"
    );
}

#[test]
fn a_deployment_with_replicas_two_in_words_fails() {
    Copy::new()
        .edit(WORKER, "replicas: 2\n", "replicas: \"two\"\n")
        .assert_rejected(&["kubernetes-validate", "spec.replicas", "'two'"]);
}

#[test]
fn an_unknown_field_in_a_container_fails_strict_validation() {
    Copy::new()
        .edit(
            WORKER,
            "imagePullPolicy: IfNotPresent",
            "imagePullPolicy: IfNotPresent\n          restartPolicyy: Always",
        )
        .assert_rejected(&["restartPolicyy"]);
}

#[test]
fn a_compose_service_with_an_unknown_key_fails() {
    Copy::new()
        .edit(
            "docker-compose.yml",
            "    restart: \"no\"\n",
            "    restart: \"no\"\n    restart_when: always\n",
        )
        .assert_rejected(&["docker-compose.yml", "restart_when"]);
}

#[test]
fn a_scaled_object_with_a_misspelt_field_fails() {
    Copy::new()
        .edit(SCALED_OBJECT, "minReplicaCount: 2", "minReplicas: 2")
        .assert_rejected(&["scaledobject_v1alpha1.json", "minReplicas"]);
}

#[test]
fn a_prometheus_trigger_without_a_query_fails() {
    Copy::new()
        .edit(
            SCALED_OBJECT,
            "        query: max(vidq_queue_depth{queue=\"poll\",state=~\"due|leased\"})\n",
            "",
        )
        .assert_rejected(&["scaledobject_v1alpha1.json", "query"]);
}

#[test]
fn a_custom_resource_without_a_schema_fails_instead_of_passing_unchecked() {
    let copy = Copy::new();
    fs::remove_dir_all(copy.root.join("deploy/schemas/monitoring.coreos.com"))
        .expect("remove the ServiceMonitor schema");
    copy.assert_rejected(&["no schema for monitoring.coreos.com/v1 ServiceMonitor"]);
}

#[test]
fn a_worker_killed_before_its_shutdown_grace_ends_fails() {
    Copy::new()
        .edit(
            WORKER,
            "terminationGracePeriodSeconds: 40",
            "terminationGracePeriodSeconds: 20",
        )
        .assert_rejected(&["terminationGracePeriodSeconds must exceed"]);
}

/// Breaks the chart's default values.yaml (a `helm install` without `-f` would fail the same way).
fn helm_value(from: &str, to: &str) -> Copy {
    let copy = Copy::new();
    copy.edit(VALUES, from, to);
    copy
}

#[test]
fn a_helm_value_of_the_wrong_type_fails_the_chart_schema() {
    helm_value("worker:\n  replicas: 2\n", "worker:\n  replicas: two\n").assert_rejected(&[
        "deploy/helm/vidq",
        "/worker/replicas",
        "want integer",
    ]);
}

#[test]
fn an_unknown_autoscaling_mode_fails_the_chart_schema() {
    helm_value("  mode: keda\n", "  mode: kedaa\n")
        .assert_rejected(&["/autoscaling/mode", "value must be one of"]);
}

#[test]
fn a_misspelt_helm_value_fails_instead_of_being_ignored() {
    helm_value("  tmpSizeLimit: 64Mi\n", "  tmpSizeLimt: 64Mi\n")
        .assert_rejected(&["/worker", "tmpSizeLimt"]);
}

#[test]
fn an_unquoted_number_in_the_helm_config_fails_the_chart_schema() {
    helm_value(
        "VIDQ__QUEUES__POLL__CONCURRENCY: \"200\"",
        "VIDQ__QUEUES__POLL__CONCURRENCY: 200",
    )
    .assert_rejected(&[
        "/config/worker/VIDQ__QUEUES__POLL__CONCURRENCY",
        "want string",
    ]);
}

#[test]
fn a_chart_that_renders_other_settings_than_kustomize_fails() {
    helm_value(
        "VIDQ__LIMITS__MAX_PROCESSING: \"3\"",
        "VIDQ__LIMITS__MAX_PROCESSING: \"4\"",
    )
    .assert_rejected(&[
        "vs kustomize deploy/k8s/overlays/keda: ConfigMap vidq/vidq-worker differs",
        "VIDQ__LIMITS__MAX_PROCESSING",
    ]);
}

#[test]
fn a_helm_worker_killed_before_its_shutdown_grace_ends_fails() {
    helm_value(
        "  terminationGracePeriodSeconds: 40\n",
        "  terminationGracePeriodSeconds: 20\n",
    )
    .assert_rejected(&[
        "deploy/helm/vidq (default values)",
        "terminationGracePeriodSeconds must exceed",
    ]);
}

#[test]
fn an_alert_rule_that_does_not_parse_fails_promtool() {
    let copy = Copy::new();
    copy.edit(
        RULES,
        "expr: absent(vidq_queue_depth)",
        "expr: absent(vidq_queue_depth",
    );
    copy.assert_rejected(&["promtool check rules", "VidqWorkersAbsent"]);
}

#[test]
fn an_alert_rule_that_no_longer_fires_when_it_should_fails_its_unit_test() {
    let copy = Copy::new();
    copy.edit(
        RULES,
        "sum(increase(vidq_uncertain_submissions_total[15m])) > 0",
        "sum(increase(vidq_uncertain_submissions_total[15m])) > 1",
    );
    // The copies are kept equal, so only the unit test can fail.
    copy.edit(
        "deploy/helm/vidq/files/rules.yaml",
        "sum(increase(vidq_uncertain_submissions_total[15m])) > 0",
        "sum(increase(vidq_uncertain_submissions_total[15m])) > 1",
    );
    copy.edit(
        "deploy/k8s/base/prometheusrule.yaml",
        "sum(increase(vidq_uncertain_submissions_total[15m])) > 0",
        "sum(increase(vidq_uncertain_submissions_total[15m])) > 1",
    );
    copy.assert_rejected(&["promtool test rules", "VidqUncertainSubmissions"]);
}

#[test]
fn a_prometheus_rule_copy_that_drifts_from_rules_yaml_fails() {
    let copy = Copy::new();
    copy.edit(RULES, "for: 10m", "for: 15m");
    copy.assert_rejected(&[
        "deploy/helm/vidq/files/rules.yaml differs from deploy/prometheus/rules.yaml",
        "deploy/k8s/base/prometheusrule.yaml holds other rules",
    ]);
}
