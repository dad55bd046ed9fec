//! The Kubernetes deployment (`deploy/`): invariants of every overlay as
//! kustomize renders it, checked against what the binaries really read, and
//! the Dockerfile's. Schemas are checked by `deploy/ci-validate.sh`; these
//! tests check what a schema cannot.
//!
//! The overlays are rendered with `kubectl kustomize`. Without kubectl the
//! tests say SKIPPED on stderr, unless `CI` is set: then it is a failure.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail, ensure};
use clap::CommandFactory;
use serde_json::Value;

const OVERLAYS: [&str; 2] = ["dev", "production"];

/// Overlays whose Secrets may be created outside the repository, as long as
/// deploy/README.md lists each name and key in its "Secrets" section.
const EXTERNAL_SECRETS_ALLOWED: [&str; 1] = ["production"];

/// What every binary reads through recapp-telemetry: `RUST_LOG`, the two
/// variables telemetry/src/lib.rs reads itself, and the standard ones the
/// OpenTelemetry SDK and its OTLP/gRPC trace exporter read (their sources,
/// opentelemetry_sdk and opentelemetry-otlp 0.33).
const TELEMETRY_ENV: &[&str] = &[
    "RUST_LOG",
    "OTEL_SERVICE_NAME",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_EXPORT_TIMEOUT",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_BSP_MAX_CONCURRENT_EXPORTS",
];

/// The shutdown grace the services use when `*_SHUTDOWN_GRACE_SECS` is unset.
const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 20;

// ---------------------------------------------------------------------------
// The tests

#[test]
fn every_container_has_resources_and_a_locked_down_security_context() -> Result<()> {
    let Some(overlays) = render_overlays()? else {
        return Ok(());
    };
    let mut problems = Vec::new();
    let mut checked = 0;
    for overlay in &overlays {
        for workload in overlay.workloads() {
            let pod = workload.pod_spec;
            for container in containers(pod) {
                checked += 1;
                let at = workload.at(container);
                for kind in ["requests", "limits"] {
                    for resource in ["cpu", "memory"] {
                        if container
                            .pointer(&format!("/resources/{kind}/{resource}"))
                            .is_none()
                        {
                            problems.push(format!("{at}: no resources.{kind}.{resource}"));
                        }
                    }
                }
                let effective = |field: &str| {
                    container
                        .pointer(&format!("/securityContext/{field}"))
                        .or_else(|| pod.pointer(&format!("/securityContext/{field}")))
                };
                if effective("runAsNonRoot") != Some(&Value::Bool(true)) {
                    problems.push(format!("{at}: runAsNonRoot is not true"));
                }
                if effective("runAsUser").and_then(Value::as_u64) == Some(0) {
                    problems.push(format!("{at}: runs as uid 0"));
                }
                if container.pointer("/securityContext/readOnlyRootFilesystem")
                    != Some(&Value::Bool(true))
                {
                    problems.push(format!("{at}: readOnlyRootFilesystem is not true"));
                }
                if container.pointer("/securityContext/allowPrivilegeEscalation")
                    != Some(&Value::Bool(false))
                {
                    problems.push(format!("{at}: allowPrivilegeEscalation is not false"));
                }
                if container.pointer("/securityContext/privileged") == Some(&Value::Bool(true)) {
                    problems.push(format!("{at}: privileged"));
                }
                if !strings(container.pointer("/securityContext/capabilities/drop"))
                    .contains(&"ALL")
                {
                    problems.push(format!("{at}: capabilities do not drop ALL"));
                }
                if !strings(container.pointer("/securityContext/capabilities/add")).is_empty() {
                    problems.push(format!("{at}: adds capabilities"));
                }
                if effective("seccompProfile/type").and_then(Value::as_str)
                    != Some("RuntimeDefault")
                {
                    problems.push(format!("{at}: seccompProfile is not RuntimeDefault"));
                }
            }
            if pod.get("hostNetwork") == Some(&Value::Bool(true))
                || pod.get("hostPID") == Some(&Value::Bool(true))
            {
                problems.push(format!("{}: shares a host namespace", workload.name()));
            }
        }
    }
    // dev: 3 services, 2 Jobs, PostgreSQL, Mailpit; production: 3 + 2.
    ensure!(checked >= 12, "only {checked} containers found");
    report(problems)
}

#[test]
fn every_deployment_container_is_probed_on_a_port_it_exposes() -> Result<()> {
    let Some(overlays) = render_overlays()? else {
        return Ok(());
    };
    let mut problems = Vec::new();
    let mut probes = 0;
    for overlay in &overlays {
        for workload in overlay.workloads() {
            for container in containers(workload.pod_spec) {
                let at = workload.at(container);
                let is_init =
                    init_containers(workload.pod_spec).any(|c| std::ptr::eq(c, container));
                if workload.object["kind"] == "Deployment" && !is_init {
                    for probe in ["readinessProbe", "livenessProbe"] {
                        if container.get(probe).is_none() {
                            problems.push(format!("{at}: no {probe}"));
                        }
                    }
                }
                for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
                    let Some(spec) = container.get(probe) else {
                        continue;
                    };
                    probes += 1;
                    let port = ["httpGet", "tcpSocket", "grpc"]
                        .iter()
                        .find_map(|handler| spec.get(*handler)?.get("port"));
                    match port {
                        Some(port) if !exposes(container, port) => problems.push(format!(
                            "{at}: {probe} targets port {port}, which the container does not expose"
                        )),
                        None if spec.get("exec").is_none() => {
                            problems.push(format!("{at}: {probe} has no port and no exec"))
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    ensure!(probes > 0, "no probes found at all");
    report(problems)
}

#[test]
fn every_referenced_secret_and_config_map_is_rendered_or_documented() -> Result<()> {
    let Some(overlays) = render_overlays()? else {
        return Ok(());
    };
    let documented = documented_secrets()?;
    let mut problems = Vec::new();
    let mut references = 0;
    for overlay in &overlays {
        for reference in overlay.references() {
            references += 1;
            match overlay.find(reference.kind, &reference.name) {
                Some(object) => {
                    let keys = data_keys(object);
                    for key in &reference.keys {
                        if !keys.contains(key.as_str()) {
                            problems.push(format!(
                                "{}: {} {} has no key {key:?} ({})",
                                overlay.name, reference.kind, reference.name, reference.from
                            ));
                        }
                    }
                }
                None if reference.kind == "Secret"
                    && EXTERNAL_SECRETS_ALLOWED.contains(&overlay.name) =>
                {
                    let name = format!("`{}`", reference.name);
                    let undocumented: Vec<_> = reference
                        .keys
                        .iter()
                        .filter(|key| !documented.contains(&format!("`{key}`")))
                        .collect();
                    if !documented.contains(&name) || !undocumented.is_empty() {
                        problems.push(format!(
                            "{}: Secret {} ({}) is created outside the repository but deploy/README.md \
                             \"Secrets\" does not list it with keys {undocumented:?}",
                            overlay.name, reference.name, reference.from
                        ));
                    }
                }
                None => problems.push(format!(
                    "{}: {} {} is referenced ({}) but not rendered",
                    overlay.name, reference.kind, reference.name, reference.from
                )),
            }
        }
    }
    ensure!(
        references > 0,
        "no Secret or ConfigMap references found at all"
    );
    report(problems)
}

#[test]
fn every_file_setting_points_into_a_mounted_volume() -> Result<()> {
    let Some(overlays) = render_overlays()? else {
        return Ok(());
    };
    let mut problems = Vec::new();
    let mut files = 0;
    for overlay in &overlays {
        for workload in overlay.workloads() {
            for container in containers(workload.pod_spec) {
                let at = workload.at(container);
                for (name, value) in overlay.environment(container) {
                    if !name.ends_with("_FILE") {
                        continue;
                    }
                    files += 1;
                    let Some(path) = value else {
                        problems.push(format!("{at}: {name} has no literal value"));
                        continue;
                    };
                    if let Err(problem) = file_is_mounted(workload.pod_spec, container, &path) {
                        problems.push(format!("{at}: {name}={path}: {problem}"));
                    }
                }
            }
        }
    }
    ensure!(files > 0, "no *_FILE settings found at all");
    report(problems)
}

#[test]
fn every_environment_variable_is_one_the_binary_reads() -> Result<()> {
    let Some(overlays) = render_overlays()? else {
        return Ok(());
    };
    let identity = clap_env(identity_service::config::Cli::command());
    let membership = clap_env(membership_service::config::Cli::command());
    // The walk must have found the settings (else every name would fail).
    ensure!(
        identity
            .get("serve")
            .is_some_and(|s| s.contains("IDENTITY_LISTEN")),
        "no IDENTITY_LISTEN in identity-service serve: {identity:?}"
    );
    ensure!(
        membership
            .get("migrate")
            .is_some_and(|s| s.contains("MEMBERSHIP_DATABASE_URL_FILE")),
        "no MEMBERSHIP_DATABASE_URL_FILE in membership-service migrate: {membership:?}"
    );
    let gateway = clap_env(gateway::config::Cli::command());

    let mut problems = Vec::new();
    for overlay in &overlays {
        let mut seen = BTreeSet::new();
        for workload in overlay.workloads() {
            for container in containers(workload.pod_spec) {
                let at = workload.at(container);
                let Some(binary) = recapp_binary(container) else {
                    continue;
                };
                seen.insert(binary);
                let subcommand = strings(container.get("args")).first().copied();
                let Some(subcommand) = subcommand else {
                    problems.push(format!("{at}: {binary} without a subcommand in args"));
                    continue;
                };
                let commands = match binary {
                    "identity-service" => &identity,
                    "membership-service" => &membership,
                    _ => &gateway,
                };
                let Some(reads) = commands.get(subcommand) else {
                    problems.push(format!("{at}: {binary} has no subcommand {subcommand:?}"));
                    continue;
                };
                for (name, _) in overlay.environment(container) {
                    if !reads.contains(&name) && !TELEMETRY_ENV.contains(&name.as_str()) {
                        problems.push(format!(
                            "{at}: {name} is not read by `{binary} {subcommand}`"
                        ));
                    }
                }
            }
        }
        for binary in ["identity-service", "membership-service", "gateway"] {
            if !seen.contains(binary) {
                problems.push(format!("{}: no container runs {binary}", overlay.name));
            }
        }
    }
    report(problems)
}

#[test]
fn every_image_has_a_pinned_tag() -> Result<()> {
    let Some(overlays) = render_overlays()? else {
        return Ok(());
    };
    let mut problems = Vec::new();
    for overlay in &overlays {
        for workload in overlay.workloads() {
            for container in containers(workload.pod_spec) {
                let image = container["image"].as_str().unwrap_or_default();
                if let Err(problem) = image_is_pinned(image) {
                    problems.push(format!("{}: {image:?}: {problem}", workload.at(container)));
                }
            }
        }
    }
    report(problems)
}

#[test]
fn image_references_without_a_tag_or_with_latest_are_refused() {
    assert!(image_is_pinned("postgres:17.6-bookworm").is_ok());
    assert!(image_is_pinned("localhost:5000/recapp/identity-service:dev").is_ok());
    assert!(image_is_pinned("registry.example.com/a/b@sha256:0123abcd").is_ok());
    assert!(image_is_pinned("registry.example.com/a/b:1.0@sha256:0123abcd").is_ok());
    assert!(image_is_pinned("postgres").is_err());
    assert!(image_is_pinned("localhost:5000/recapp/identity-service").is_err());
    assert!(image_is_pinned("postgres:latest").is_err());
    assert!(image_is_pinned("").is_err());
}

#[test]
fn every_termination_grace_period_covers_the_drain() -> Result<()> {
    let Some(overlays) = render_overlays()? else {
        return Ok(());
    };
    let mut problems = Vec::new();
    for overlay in &overlays {
        for workload in overlay.workloads() {
            if workload.object["kind"] != "Deployment" {
                continue;
            }
            let period = workload.pod_spec["terminationGracePeriodSeconds"]
                .as_u64()
                .unwrap_or(30);
            for container in containers(workload.pod_spec) {
                let Some(binary) = recapp_binary(container) else {
                    continue;
                };
                let env = overlay.environment(container);
                let grace = env
                    .iter()
                    .find(|(name, _)| name.ends_with("_SHUTDOWN_GRACE_SECS"))
                    .and_then(|(_, value)| value.as_deref()?.parse::<u64>().ok())
                    .unwrap_or(DEFAULT_SHUTDOWN_GRACE_SECS);
                let sleep = container
                    .pointer("/lifecycle/preStop/sleep/seconds")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                // membership-service waits for its outbox relay for another
                // grace period after the server drained (startup.rs).
                let drains = if binary == "membership-service" { 2 } else { 1 };
                let needed = sleep + drains * grace;
                if period <= needed {
                    problems.push(format!(
                        "{}: terminationGracePeriodSeconds {period} does not exceed preStop {sleep} s + {drains} x grace {grace} s",
                        workload.at(container)
                    ));
                }
            }
        }
    }
    report(problems)
}

#[test]
fn every_service_and_disruption_budget_selects_pods_that_expose_the_ports() -> Result<()> {
    let Some(overlays) = render_overlays()? else {
        return Ok(());
    };
    let mut problems = Vec::new();
    for overlay in &overlays {
        let templates: Vec<_> = overlay
            .workloads()
            .into_iter()
            .filter(|w| w.object["kind"] != "Job")
            .collect();
        for object in &overlay.objects {
            let name = object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("?");
            let selector = match object["kind"].as_str() {
                Some("Service") => object.pointer("/spec/selector"),
                Some("PodDisruptionBudget") => object.pointer("/spec/selector/matchLabels"),
                _ => continue,
            };
            let Some(selector) = selector.and_then(Value::as_object) else {
                continue;
            };
            let selected: Vec<_> = templates
                .iter()
                .filter(|w| selector.iter().all(|(k, v)| w.labels().get(k) == Some(v)))
                .collect();
            let kind = object["kind"].as_str().unwrap_or_default();
            if selected.is_empty() {
                problems.push(format!("{}: {kind} {name} selects no pods", overlay.name));
                continue;
            }
            if kind != "Service" {
                continue;
            }
            for port in object
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let target = port.get("targetPort").or_else(|| port.get("port"));
                let Some(target) = target else { continue };
                for workload in &selected {
                    if !containers(workload.pod_spec).any(|c| exposes(c, target)) {
                        problems.push(format!(
                            "{}: Service {name} targets port {target} that {} does not expose",
                            overlay.name,
                            workload.name()
                        ));
                    }
                }
            }
        }
        for object in overlay.of_kind("HorizontalPodAutoscaler") {
            let target = object
                .pointer("/spec/scaleTargetRef/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if overlay.find("Deployment", target).is_none() {
                problems.push(format!(
                    "{}: HPA scales a missing Deployment {target}",
                    overlay.name
                ));
            }
        }
    }
    report(problems)
}

#[test]
fn the_dockerfile_pins_its_bases_builds_locked_and_runs_unprivileged() -> Result<()> {
    let root = workspace_root();
    let text = std::fs::read_to_string(root.join("deploy/Dockerfile"))
        .context("reading deploy/Dockerfile")?;
    let problems = dockerfile_problems(&text);
    let ignore =
        std::fs::read_to_string(root.join(".dockerignore")).context("reading .dockerignore")?;
    let ignored: BTreeSet<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let mut problems = problems;
    for needed in [
        ".git",
        "**/target",
        "data",
        "**/node_modules",
        "bench-results",
    ] {
        if !ignored.contains(needed) {
            problems.push(format!(".dockerignore does not exclude {needed}"));
        }
    }
    report(problems)
}

#[test]
fn a_dockerfile_with_a_floating_base_a_root_user_or_a_shell_entrypoint_is_refused() {
    let bad = "FROM rust:latest AS build\n\
               RUN cargo build --release -p app\n\
               FROM debian\n\
               RUN apt-get update\n\
               USER root\n\
               ENTRYPOINT /usr/local/bin/app serve\n";

    let problems = dockerfile_problems(bad).join("\n");

    for expected in [
        "rust:latest",
        "debian",
        "--locked",
        "ARG BIN",
        "numeric",
        "exec form",
        "RUN in the runtime stage",
    ] {
        assert!(
            problems.contains(expected),
            "{expected:?} not reported in:\n{problems}"
        );
    }
}

// ---------------------------------------------------------------------------
// Rendering

struct Overlay {
    name: &'static str,
    objects: Vec<Value>,
}

/// A pod template and the object holding it.
struct Workload<'a> {
    overlay: &'static str,
    object: &'a Value,
    pod_spec: &'a Value,
    pod_metadata: &'a Value,
}

/// A Secret or ConfigMap a workload (or Ingress) uses, with the keys it needs.
struct Reference {
    kind: &'static str,
    name: String,
    keys: Vec<String>,
    from: String,
}

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Renders every overlay; `None` when kubectl is missing outside CI.
fn render_overlays() -> Result<Option<Vec<Overlay>>> {
    let root = workspace_root();
    let mut overlays = Vec::new();
    for name in OVERLAYS {
        let dir = root.join("deploy/overlays").join(name);
        let output = match Command::new("kubectl").arg("kustomize").arg(&dir).output() {
            Ok(output) => output,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if std::env::var_os("CI").is_some() {
                    bail!("kubectl is not installed, and CI needs it to render deploy/");
                }
                eprintln!("SKIPPED: kubectl is not installed; deploy/ was not rendered");
                return Ok(None);
            }
            Err(e) => return Err(e).context("running kubectl kustomize"),
        };
        ensure!(
            output.status.success(),
            "kubectl kustomize {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout).context("kustomize printed non-UTF-8")?;
        let objects = parse_documents(&text)
            .with_context(|| format!("parsing the rendered {name} overlay"))?;
        ensure!(!objects.is_empty(), "the {name} overlay renders nothing");
        overlays.push(Overlay { name, objects });
    }
    Ok(Some(overlays))
}

/// kustomize separates documents with a `---` line.
fn parse_documents(text: &str) -> Result<Vec<Value>> {
    let mut objects = Vec::new();
    for document in text.split("\n---\n") {
        if document.trim().is_empty() {
            continue;
        }
        let value: Value = serde_norway::from_str(document)?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

impl Overlay {
    fn of_kind(&self, kind: &'static str) -> impl Iterator<Item = &Value> {
        self.objects.iter().filter(move |o| o["kind"] == kind)
    }

    fn find(&self, kind: &'static str, name: &str) -> Option<&Value> {
        self.of_kind(kind)
            .find(|o| o.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
    }

    fn workloads(&self) -> Vec<Workload<'_>> {
        let mut workloads = Vec::new();
        for object in &self.objects {
            let template = match object["kind"].as_str() {
                Some("Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job") => {
                    object.pointer("/spec/template")
                }
                Some("CronJob") => object.pointer("/spec/jobTemplate/spec/template"),
                Some("Pod") => Some(object),
                _ => None,
            };
            if let Some(template) = template {
                workloads.push(Workload {
                    overlay: self.name,
                    object,
                    pod_spec: &template["spec"],
                    pod_metadata: &template["metadata"],
                });
            }
        }
        workloads
    }

    /// Every Secret and ConfigMap the workloads and Ingresses use.
    fn references(&self) -> Vec<Reference> {
        let mut references = Vec::new();
        let mut add = |kind, name: Option<&str>, keys: Vec<String>, from: String| {
            if let Some(name) = name {
                references.push(Reference {
                    kind,
                    name: name.to_owned(),
                    keys,
                    from,
                });
            }
        };
        let item_keys = |source: &Value| -> Vec<String> {
            source
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|item| Some(item.get("key")?.as_str()?.to_owned()))
                .collect()
        };
        for workload in self.workloads() {
            let owner = workload.name();
            for volume in array(workload.pod_spec.get("volumes")) {
                let from = format!("{owner} volume {}", volume["name"]);
                if let Some(secret) = volume.get("secret") {
                    add(
                        "Secret",
                        secret["secretName"].as_str(),
                        item_keys(secret),
                        from.clone(),
                    );
                }
                if let Some(map) = volume.get("configMap") {
                    add(
                        "ConfigMap",
                        map["name"].as_str(),
                        item_keys(map),
                        from.clone(),
                    );
                }
                for source in array(volume.pointer("/projected/sources")) {
                    if let Some(secret) = source.get("secret") {
                        add(
                            "Secret",
                            secret["name"].as_str(),
                            item_keys(secret),
                            from.clone(),
                        );
                    }
                    if let Some(map) = source.get("configMap") {
                        add(
                            "ConfigMap",
                            map["name"].as_str(),
                            item_keys(map),
                            from.clone(),
                        );
                    }
                }
            }
            for container in containers(workload.pod_spec) {
                let at = workload.at(container);
                for env in array(container.get("env")) {
                    for (field, kind) in
                        [("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")]
                    {
                        if let Some(reference) = env.pointer(&format!("/valueFrom/{field}")) {
                            let keys = reference["key"]
                                .as_str()
                                .map(str::to_owned)
                                .into_iter()
                                .collect();
                            add(
                                kind,
                                reference["name"].as_str(),
                                keys,
                                format!("{at} env {}", env["name"]),
                            );
                        }
                    }
                }
                for source in array(container.get("envFrom")) {
                    for (field, kind) in [("secretRef", "Secret"), ("configMapRef", "ConfigMap")] {
                        if let Some(reference) = source.get(field) {
                            add(
                                kind,
                                reference["name"].as_str(),
                                Vec::new(),
                                format!("{at} envFrom"),
                            );
                        }
                    }
                }
            }
        }
        for ingress in self.of_kind("Ingress") {
            let name = ingress
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("?");
            for tls in array(ingress.pointer("/spec/tls")) {
                add(
                    "Secret",
                    tls["secretName"].as_str(),
                    vec!["tls.crt".into(), "tls.key".into()],
                    format!("Ingress {name}"),
                );
            }
        }
        references
    }

    /// The container's environment: `env` entries (with their literal
    /// values) and the keys of the ConfigMaps and Secrets in `envFrom`.
    fn environment(&self, container: &Value) -> Vec<(String, Option<String>)> {
        let mut environment = Vec::new();
        for source in array(container.get("envFrom")) {
            let prefix = source["prefix"].as_str().unwrap_or_default();
            for (field, kind) in [("configMapRef", "ConfigMap"), ("secretRef", "Secret")] {
                let Some(name) = source.get(field).and_then(|r| r["name"].as_str()) else {
                    continue;
                };
                let Some(object) = self.find(kind, name) else {
                    continue;
                };
                for (key, value) in object
                    .get("data")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    let literal = (kind == "ConfigMap").then(|| value.as_str().map(str::to_owned));
                    environment.push((format!("{prefix}{key}"), literal.flatten()));
                }
            }
        }
        for env in array(container.get("env")) {
            let name = env["name"].as_str().unwrap_or_default().to_owned();
            environment.push((name, env["value"].as_str().map(str::to_owned)));
        }
        environment
    }
}

impl Workload<'_> {
    fn name(&self) -> String {
        format!(
            "{}: {} {}",
            self.overlay,
            self.object["kind"].as_str().unwrap_or("?"),
            self.object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("?")
        )
    }

    fn at(&self, container: &Value) -> String {
        format!(
            "{} container {}",
            self.name(),
            container["name"].as_str().unwrap_or("?")
        )
    }

    fn labels(&self) -> serde_json::Map<String, Value> {
        self.pod_metadata
            .get("labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }
}

fn array(value: Option<&Value>) -> impl Iterator<Item = &Value> {
    value.and_then(Value::as_array).into_iter().flatten()
}

fn strings(value: Option<&Value>) -> Vec<&str> {
    array(value).filter_map(Value::as_str).collect()
}

fn init_containers(pod: &Value) -> impl Iterator<Item = &Value> {
    array(pod.get("initContainers"))
}

/// Containers and init containers.
fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    array(pod.get("containers")).chain(init_containers(pod))
}

/// A port given by number or by name, among the container's ports.
fn exposes(container: &Value, port: &Value) -> bool {
    array(container.get("ports")).any(|p| match port {
        Value::Number(n) => p.get("containerPort").and_then(Value::as_u64) == n.as_u64(),
        Value::String(name) => p.get("name").and_then(Value::as_str) == Some(name.as_str()),
        _ => false,
    })
}

fn data_keys(object: &Value) -> BTreeSet<&str> {
    ["data", "stringData", "binaryData"]
        .iter()
        .filter_map(|field| object.get(*field)?.as_object())
        .flat_map(|map| map.keys().map(String::as_str))
        .collect()
}

/// Our own binaries, by the last part of the image's repository name.
fn recapp_binary(container: &Value) -> Option<&'static str> {
    let image = container["image"].as_str()?;
    let repository = image.split('@').next()?;
    let last = repository.rsplit('/').next()?;
    let name = last.split(':').next()?;
    ["identity-service", "membership-service", "gateway"]
        .into_iter()
        .find(|binary| *binary == name)
}

/// The environment variables of each subcommand of a clap command (flags
/// flattened into a subcommand are its own).
fn clap_env(command: clap::Command) -> BTreeMap<String, BTreeSet<String>> {
    fn walk(command: &clap::Command, prefix: &str, out: &mut BTreeMap<String, BTreeSet<String>>) {
        for sub in command.get_subcommands() {
            let name = if prefix.is_empty() {
                sub.get_name().to_owned()
            } else {
                format!("{prefix} {}", sub.get_name())
            };
            let env = sub
                .get_arguments()
                .chain(command.get_arguments().filter(|a| a.is_global_set()))
                .filter_map(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned())
                .collect();
            out.insert(name.clone(), env);
            walk(sub, &name, out);
        }
    }
    let mut out = BTreeMap::new();
    walk(&command, "", &mut out);
    out
}

/// Checks that `path` is a file a volume mounted in the container provides.
fn file_is_mounted(pod: &Value, container: &Value, path: &str) -> Result<(), String> {
    let mount = array(container.get("volumeMounts"))
        .filter_map(|m| {
            let base = m["mountPath"].as_str()?.trim_end_matches('/');
            let rest = path.strip_prefix(base)?.strip_prefix('/')?;
            Some((m, rest))
        })
        .max_by_key(|(m, _)| m["mountPath"].as_str().map(str::len));
    let Some((mount, rest)) = mount else {
        return Err("not inside any volumeMount of the container".into());
    };
    let rest = match mount["subPath"].as_str() {
        Some(sub) => format!("{sub}/{rest}"),
        None => rest.to_owned(),
    };
    let volume = array(pod.get("volumes"))
        .find(|v| v["name"] == mount["name"])
        .ok_or_else(|| format!("volume {} is not defined", mount["name"]))?;
    let source = volume.get("secret").or_else(|| volume.get("configMap"));
    if let Some(items) = source
        .and_then(|s| s.get("items"))
        .and_then(Value::as_array)
    {
        if !items
            .iter()
            .any(|item| item["path"].as_str() == Some(rest.as_str()))
        {
            return Err(format!(
                "volume {} has no item with path {rest:?}",
                mount["name"]
            ));
        }
    } else if source.is_none() && volume.get("projected").is_none() && volume.get("csi").is_none() {
        return Err(format!(
            "volume {} holds no Secret or ConfigMap",
            mount["name"]
        ));
    }
    Ok(())
}

fn image_is_pinned(image: &str) -> Result<(), &'static str> {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    if name.is_empty() {
        return Err("no image");
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    let tag = last.split_once(':').map(|(_, tag)| tag);
    match (tag, digest) {
        (Some("latest"), _) => Err("tagged latest"),
        (Some(""), _) => Err("empty tag"),
        (_, Some(digest)) if !digest.starts_with("sha256:") => Err("not a sha256 digest"),
        (None, None) => Err("no tag or digest"),
        _ => Ok(()),
    }
}

/// The Secrets section of deploy/README.md.
fn documented_secrets() -> Result<String> {
    let readme = std::fs::read_to_string(workspace_root().join("deploy/README.md"))
        .context("reading deploy/README.md")?;
    let start = readme
        .find("\n## Secrets")
        .context("deploy/README.md has no \"## Secrets\" section")?;
    let section = &readme[start + 1..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    Ok(section[..end].to_owned())
}

/// What is wrong with a Dockerfile, by the rules in deploy/README.md.
fn dockerfile_problems(text: &str) -> Vec<String> {
    // Logical lines: comments dropped, continuation lines joined.
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(start) => {
                current.push_str(start);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }

    let mut problems = Vec::new();
    let mut stages: Vec<String> = Vec::new();
    let mut final_stage: Vec<(String, String)> = Vec::new();
    let mut build_arg = false;
    let mut locked_build = false;
    for line in &lines {
        let (instruction, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let instruction = instruction.to_ascii_uppercase();
        let rest = rest.trim();
        match instruction.as_str() {
            "FROM" => {
                let words: Vec<&str> = rest
                    .split_whitespace()
                    .filter(|w| !w.starts_with("--platform"))
                    .collect();
                let image = words.first().copied().unwrap_or_default();
                if !stages.iter().any(|s| s == image) {
                    if image.contains('$') {
                        problems.push(format!("FROM {image}: the base comes from a variable"));
                    } else if let Err(problem) = image_is_pinned(image) {
                        problems.push(format!("FROM {image}: {problem}"));
                    }
                }
                if let [_, alias, name, ..] = words.as_slice()
                    && alias.eq_ignore_ascii_case("as")
                {
                    stages.push((*name).to_owned());
                }
                final_stage.clear();
            }
            "ARG" if rest.split('=').next() == Some("BIN") => build_arg = true,
            "RUN" if rest.contains("cargo build") => {
                locked_build = rest.contains("--locked")
                    && rest.contains("--release")
                    && rest.contains("-p")
                    && rest.contains("BIN");
            }
            _ => {}
        }
        final_stage.push((instruction, rest.to_owned()));
    }
    if !build_arg {
        problems.push("no ARG BIN: the binary is not a parameter".into());
    }
    if !locked_build {
        problems.push("no RUN cargo build --locked --release -p $BIN".into());
    }
    for (instruction, _) in &final_stage {
        if instruction == "RUN" || instruction == "SHELL" {
            problems.push(format!(
                "{instruction} in the runtime stage (it needs no shell)"
            ));
        }
    }
    match final_stage.iter().rev().find(|(i, _)| i == "USER") {
        None => problems.push("the runtime stage sets no USER".into()),
        Some((_, user)) => {
            let uid = user.split(':').next().unwrap_or_default();
            match uid.parse::<u32>() {
                Ok(0) => problems.push("USER is root (0)".into()),
                Ok(_) => {}
                Err(_) => problems.push(format!("USER {user} is not numeric")),
            }
        }
    }
    match final_stage.iter().rev().find(|(i, _)| i == "ENTRYPOINT") {
        None => problems.push("the runtime stage has no ENTRYPOINT".into()),
        Some((_, entrypoint)) => {
            if serde_json::from_str::<Vec<String>>(entrypoint).map_or(true, |v| v.is_empty()) {
                problems.push(format!("ENTRYPOINT {entrypoint} is not in exec form"));
            }
        }
    }
    problems
}

fn report(problems: Vec<String>) -> Result<()> {
    ensure!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
    Ok(())
}
