//! The release image that `make image` writes to target/oci/bluegreen-controller.oci.tar
//! (`make test` builds it before the test suite runs): its config is the one the Dockerfile
//! declares, its only layer holds one statically linked binary and a CA bundle (no shell),
//! and that binary — taken out of the layer, and run as a container by podman — reconciles
//! a release on kubesim.

use std::{
    collections::HashMap,
    io::Read,
    path::{Path, PathBuf},
    process::Command,
};

use bluegreen_crd::{Color, Phase};
use bluegreen_e2e::{
    ControllerProcess,
    fixture::{Fixture, release},
    repo_root,
};
use serde_json::Value;

const ENTRYPOINT: &str = "/bluegreen-controller";
/// The image must stay small enough to pull in seconds on a fresh node.
const MAX_IMAGE_BYTES: u64 = 25 * 1000 * 1000;

fn archive_path() -> PathBuf {
    repo_root().join("target/oci/bluegreen-controller.oci.tar")
}

/// The OCI archive's files (oci-layout, index.json, blobs/sha256/...), by path.
struct Archive(HashMap<String, Vec<u8>>);

impl Archive {
    fn open() -> Archive {
        let path = archive_path();
        let file = std::fs::File::open(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; `make image` writes it (`make test` runs it first)",
                path.display()
            )
        });
        let mut files = HashMap::new();
        for entry in tar::Archive::new(file).entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            files.insert(name.trim_start_matches("./").to_string(), bytes);
        }
        Archive(files)
    }

    fn blob(&self, digest: &str) -> &[u8] {
        let (algorithm, hex) = digest.split_once(':').expect("a digest");
        self.0
            .get(&format!("blobs/{algorithm}/{hex}"))
            .unwrap_or_else(|| panic!("blob {digest} missing from the archive"))
    }

    fn json(&self, digest: &str) -> Value {
        serde_json::from_slice(self.blob(digest)).unwrap()
    }

    /// The image's manifest (the archive holds exactly one).
    fn manifest(&self) -> Value {
        let index: Value = serde_json::from_slice(&self.0["index.json"]).unwrap();
        let manifests = index["manifests"].as_array().unwrap();
        assert_eq!(manifests.len(), 1, "{index}");
        self.json(manifests[0]["digest"].as_str().unwrap())
    }

    fn config(&self) -> Value {
        self.json(self.manifest()["config"]["digest"].as_str().unwrap())
    }

    /// Every layer's entries: (path, bytes), in layer order.
    fn layer_files(&self) -> Vec<(String, tar::EntryType, Vec<u8>)> {
        let mut out = Vec::new();
        for layer in self.manifest()["layers"].as_array().unwrap() {
            assert_eq!(
                layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
                "{layer}"
            );
            let blob = self.blob(layer["digest"].as_str().unwrap());
            // umoci's layers are gzip streams of several members (parallel gzip).
            let mut tar = tar::Archive::new(flate2::read::MultiGzDecoder::new(blob));
            for entry in tar.entries().unwrap() {
                let mut entry = entry.unwrap();
                let name = entry.path().unwrap().to_string_lossy().into_owned();
                let kind = entry.header().entry_type();
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).unwrap();
                out.push((name.trim_start_matches("./").to_string(), kind, bytes));
            }
        }
        out
    }

    /// The controller binary out of the layers, written to `dir` (mode 0755).
    fn extract_binary(&self, dir: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let (_, _, bytes) = self
            .layer_files()
            .into_iter()
            .find(|(name, _, _)| format!("/{name}") == ENTRYPOINT)
            .expect("the entrypoint is in a layer");
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("bluegreen-controller");
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }
}

/// The Dockerfile's final stage: its LABEL keys and values (ARGs substituted by `args`),
/// USER and ENTRYPOINT.
fn dockerfile_final_stage(
    args: &HashMap<&str, String>,
) -> (HashMap<String, String>, String, Value) {
    let text = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    let joined = text.replace("\\\n", " ");
    let stage = joined
        .rsplit_once("\nFROM ")
        .expect("a multi-stage Dockerfile")
        .1;
    assert!(stage.starts_with("scratch"), "final stage: FROM {stage}");
    let (mut labels, mut user, mut entrypoint) = (HashMap::new(), None, None);
    for line in stage.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("LABEL ") {
            let mut rest = rest.trim();
            while let Some((key, after)) = rest.split_once("=\"") {
                let (value, after) = after.split_once('"').expect("a quoted label value");
                let mut value = value.to_string();
                for (arg, replacement) in args {
                    value = value.replace(&format!("${{{arg}}}"), replacement);
                }
                labels.insert(key.trim().to_string(), value);
                rest = after.trim();
            }
        } else if let Some(rest) = line.strip_prefix("USER ") {
            user = Some(rest.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("ENTRYPOINT ") {
            entrypoint = Some(serde_json::from_str(rest).expect("ENTRYPOINT in exec form"));
        }
    }
    (labels, user.expect("USER"), entrypoint.expect("ENTRYPOINT"))
}

fn workspace_version() -> String {
    let cargo = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    let section = cargo.split("[workspace.package]").nth(1).unwrap();
    let line = section
        .lines()
        .find(|l| l.starts_with("version = "))
        .unwrap();
    line.trim_start_matches("version = ")
        .trim_matches('"')
        .into()
}

#[test]
fn image_config_is_the_dockerfiles_final_stage_and_the_image_is_small() {
    let archive = Archive::open();
    let config = archive.config();
    let revision = config["config"]["Labels"]["org.opencontainers.image.revision"]
        .as_str()
        .expect("a revision label")
        .to_string();
    assert!(
        revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit()),
        "revision is a commit: {revision}"
    );
    let args = HashMap::from([("VERSION", workspace_version()), ("REVISION", revision)]);
    let (labels, user, entrypoint) = dockerfile_final_stage(&args);
    for key in ["source", "revision", "version", "licenses"] {
        assert!(
            labels.contains_key(&format!("org.opencontainers.image.{key}")),
            "the Dockerfile labels {key}"
        );
    }
    let image_labels: HashMap<String, String> =
        serde_json::from_value(config["config"]["Labels"].clone()).unwrap();
    assert_eq!(image_labels, labels, "image labels = Dockerfile labels");
    assert_eq!(
        image_labels["org.opencontainers.image.licenses"],
        "Apache-2.0"
    );
    assert_eq!(
        image_labels["org.opencontainers.image.version"],
        workspace_version()
    );

    assert_eq!(user, "65532:65532");
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(entrypoint, serde_json::json!([ENTRYPOINT]));
    assert_eq!(config["config"]["Entrypoint"], entrypoint);
    assert!(config["config"]["Cmd"].is_null(), "{config}");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");

    // Size as pushed (the archive: compressed layer, config, manifest) and as unpacked on
    // a node (the layers' files).
    let pushed = std::fs::metadata(archive_path()).unwrap().len();
    let unpacked: u64 = archive
        .layer_files()
        .iter()
        .map(|(_, _, bytes)| bytes.len() as u64)
        .sum();
    println!("image: {pushed} bytes as an OCI archive, {unpacked} bytes unpacked");
    assert!(pushed < MAX_IMAGE_BYTES, "archive is {pushed} bytes");
    assert!(
        unpacked < MAX_IMAGE_BYTES,
        "unpacked image is {unpacked} bytes"
    );
}

#[test]
fn image_holds_one_static_binary_and_no_shell() {
    let archive = Archive::open();
    let files = archive.layer_files();
    let names: Vec<&str> = files
        .iter()
        .filter(|(_, kind, _)| !kind.is_dir())
        .map(|(name, _, _)| name.as_str())
        .collect();
    assert_eq!(
        names,
        ["bluegreen-controller", "etc/ssl/certs/ca-certificates.crt"],
        "the binary and the system roots, nothing else"
    );
    assert!(
        !files
            .iter()
            .any(|(name, _, _)| name.ends_with("sh") || name.starts_with("bin")),
        "no shell: {names:?}"
    );

    let (_, _, elf) = files
        .iter()
        .find(|(name, _, _)| name == "bluegreen-controller")
        .unwrap();
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(elf[4], 2, "64-bit");
    // Program headers: a dynamically linked binary names its loader in PT_INTERP.
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    assert!(phnum > 0);
    let types: Vec<u32> = (0..phnum)
        .map(|i| {
            let at = phoff + i * phentsize;
            u32::from_le_bytes(elf[at..at + 4].try_into().unwrap())
        })
        .collect();
    const PT_LOAD: u32 = 1;
    const PT_INTERP: u32 = 3;
    assert!(types.contains(&PT_LOAD));
    assert!(
        !types.contains(&PT_INTERP),
        "statically linked: no dynamic loader (program headers {types:?})"
    );
}

/// blue on 1.0.0, then an upgrade with a passing smoke test flips to green on 1.1.0.
async fn blue_then_green(fixture: &Fixture) {
    fixture.apply(&release("registry.example/shop:1.0.0", 0));
    let status = fixture.stable("1.0.0").await;
    assert_eq!(status.active_color, Some(Color::Blue));
    assert_eq!(fixture.active_selector().await.0, "blue");

    fixture.apply(&release("registry.example/shop:1.1.0", 0));
    let status = fixture.stable("1.1.0").await;
    assert_eq!(status.phase, Some(Phase::Stable));
    assert_eq!(status.active_color, Some(Color::Green));
    assert_eq!(fixture.active_selector().await.0, "green");
}

/// Prints the controller's log when the test fails while it lives.
struct LogOnFailure<'a>(&'a ControllerProcess);

impl Drop for LogOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("controller log:\n{}", self.0.log_text());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_from_the_image_prints_help_and_reconciles_a_release() {
    let fixture = Fixture::start("image-binary").await;
    let binary = Archive::open().extract_binary(&fixture.env.dir.join("rootfs"));

    let help = Command::new(&binary).arg("--help").output().unwrap();
    assert!(help.status.success(), "{help:?}");
    let help = String::from_utf8(help.stdout).unwrap();
    for flag in [
        "--namespace",
        "--metrics-addr",
        "--leader-election",
        "--log-format",
    ] {
        assert!(help.contains(flag), "--help lists {flag}:\n{help}");
    }

    let controller = fixture
        .env
        .start_controller_command(&binary, &[])
        .expect("the extracted binary starts");
    let _log = LogOnFailure(&controller);
    blue_then_green(&fixture).await;
    assert!(
        controller.log_text().contains("serving /metrics"),
        "{}",
        controller.log_text()
    );
}

/// podman runs the image itself: host network (kubesim listens on loopback), the
/// kubeconfig mounted read-only, the image's own user and entrypoint.
///
/// On this kind of machine (a VM whose cgroups are in hybrid v1/v2 mode, without
/// CAP_SYS_RESOURCE) podman needs three settings that a normal host does not: the runc
/// runtime (crun refuses hybrid cgroups), explicit ulimits (podman's defaults for root
/// exceed the hard limits, and raising them is not permitted), and vfs storage in the
/// test's directory (no overlay mounts, and nothing left in the machine's image store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_from_the_image_reconciles_a_release_under_podman() {
    let fixture = Fixture::start("image-podman").await;
    let env = &fixture.env;
    let storage = env.dir.join("podman");
    let root = storage.join("root").display().to_string();
    let runroot = storage.join("run").display().to_string();
    let archive = format!("oci-archive:{}", archive_path().display());
    // The controller's own kubeconfig (self-contained: on the upstream control plane, the
    // chart ServiceAccount's token with the CA embedded).
    let kubeconfig = format!("{}:/kubeconfig:ro", env.controller_kubeconfig().display());
    let mut args = vec![
        "--root",
        &root,
        "--runroot",
        &runroot,
        "--storage-driver",
        "vfs",
        "--runtime",
        "runc",
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "none",
        "run",
        "--rm",
        "--network",
        "host",
        "--ulimit",
        "nofile=4096:4096",
        "--ulimit",
        "nproc=4096:4096",
        "--volume",
        &kubeconfig,
        "--env",
        "KUBECONFIG=/kubeconfig",
    ];
    // The harness's settings for the controller, from podman's environment into the
    // container's.
    for name in [
        "BLUEGREEN_NAMESPACE",
        "POD_NAMESPACE",
        "BLUEGREEN_METRICS_ADDR",
        "BLUEGREEN_LOG_LEVEL",
        "BLUEGREEN_LOG_FORMAT",
    ] {
        args.extend(["--env", name]);
    }
    args.push(&archive);
    let podman = which("podman").expect("podman (installed by `make tools`)");
    let mut controller = env
        .start_controller_command(&podman, &args)
        .expect("podman starts");

    {
        let _log = LogOnFailure(&controller);
        blue_then_green(&fixture).await;
    }

    let log = controller.log_text();
    assert!(log.contains("serving /metrics"), "{log}");
    let status = controller.stop().unwrap();
    assert!(
        status.success(),
        "stops cleanly on SIGTERM: {status}\n{log}"
    );
    let _ = std::fs::remove_dir_all(&storage);
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}
