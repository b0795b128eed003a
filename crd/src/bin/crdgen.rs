//! Prints the BlueGreenRelease CRD as YAML (`make crds` writes it under `charts/`).

fn main() {
    print!("{}", bluegreen_crd::crd::crd_yaml());
}
