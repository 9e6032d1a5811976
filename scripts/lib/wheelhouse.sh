# Sourced by the set-up steps. PyTorch is pinned (torch==2.13.0); where no local CPU
# wheel exists, PyPI's build is the CUDA one (several GB with its nvidia-* wheels).
# It is downloaded once per machine into a wheelhouse outside the source tree and
# every environment installs it from there, never from the network again.
INSITU_CACHE=${INSITU_CACHE:-/var/cache/insitu}
WHEELHOUSE=$INSITU_CACHE/wheels
TORCH_PIN="torch==2.13.0"

# install_torch PIP: install the pinned torch and its dependencies into PIP's environment
install_torch() {
  local pip=$1
  mkdir -p "$WHEELHOUSE"
  if ! "$pip" install -q --no-index --find-links "$WHEELHOUSE" "$TORCH_PIN" 2>/dev/null; then
    printf '\033[1m[setup]\033[0m %s\n' "downloading $TORCH_PIN once into $WHEELHOUSE"
    "$pip" download -q -d "$WHEELHOUSE" "$TORCH_PIN"
    "$pip" install -q --no-index --find-links "$WHEELHOUSE" "$TORCH_PIN"
  fi
}
