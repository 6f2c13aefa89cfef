# The two commands of the README: `make run` (the main job) and `make test` (every test).
.PHONY: run test bench

# Until the server lands, the main job renders the example repository with the compiler.
run:
	cargo run --release --locked -p server --bin hb -- compile gitops-repo-example/intent --out out/example

test:
	bash scripts/test.sh

bench:
	cargo bench -p compiler --bench compile
	cargo bench -p server --bench engine
	cargo bench -p server --bench audit
