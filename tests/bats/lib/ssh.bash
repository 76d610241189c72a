# shellcheck shell=bash
# A real sshd in front of the sandbox host (tests/ssh/start-sshd), for ssh.bats and push.bats.
# A part of test_helper.bash, which sources it; bats files load test_helper, not this.

# sshd_start: starts an sshd whose forced command is the sandbox's dokku, in this scope's temp
# dir, and exports SSHD_DIR, SSH_PORT, SSH_LOGIN, SSH_DEST (LOGIN@127.0.0.1:PORT, as
# `dokku-image push` takes it) and SSH_CMD, the client with every option (`$SSH_CMD -p "$SSH_PORT"
# "$SSH_LOGIN@127.0.0.1" CMD`; words, as `push --ssh` splits them). sshd_stop stops it.
sshd_start() {
  SSHD_DIR="$(_helper_scope_dir)/sshd"
  "$REPO_ROOT/tests/ssh/start-sshd" "$SSHD_DIR" "$SANDBOX_DIR/bin/dokku" || {
    fail "start-sshd failed"
    return 1
  }
  SSH_PORT="$(<"$SSHD_DIR/port")"
  SSH_LOGIN="$(<"$SSHD_DIR/user")"
  SSH_DEST="$SSH_LOGIN@127.0.0.1:$SSH_PORT"
  SSH_CMD="ssh -F $SSHD_DIR/ssh_config"
  export SSHD_DIR SSH_PORT SSH_LOGIN SSH_DEST SSH_CMD
}

# over_ssh ARGS…: `ssh dokku@host ARGS…` through that sshd, stdin passed through.
over_ssh() {
  # shellcheck disable=SC2086 # SSH_CMD is words, as --ssh splits it
  $SSH_CMD -p "$SSH_PORT" "$SSH_LOGIN@127.0.0.1" "$@"
}

sshd_stop() {
  [[ -z "${SSHD_DIR:-}" ]] || "$REPO_ROOT/tests/ssh/stop-sshd" "$SSHD_DIR" || true
}
