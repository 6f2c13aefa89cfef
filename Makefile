# The two commands of the README: `make run` (the main job: the server) and `make test` (every test).
.PHONY: run example test bench

# The control plane on 127.0.0.1:8080 (metrics on 127.0.0.1:9090), SQLite and the Git
# repository under hexabase-data/; it prints how to sign in the first time.
run:
	cargo run --release --locked -p server --bin hb -- serve

# Renders the example intent with the compiler into out/example.
example:
	cargo run --release --locked -p server --bin hb -- compile gitops-repo-example/intent --out out/example

test:
	bash scripts/test.sh

bench:
	cargo bench -p compiler --bench compile
	cargo bench -p server --bench engine
	cargo bench -p server --bench audit
	cargo bench -p server --bench api
	cargo bench -p server --bench hb_compile
