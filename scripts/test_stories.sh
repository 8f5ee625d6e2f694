#!/usr/bin/env bash
# Test stories against the trained model (rasa-demo's CI order: validate → train → test stories).
# --e2e: the shopper's text goes through NLU, so a misunderstood message fails the story too.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf results
.venv/bin/rasa test core --model models/rapport.tar.gz --stories tests/stories --e2e \
  --fail-on-prediction-errors --out results > results.log 2>&1 || {
  grep -vE "tensorflow|Warning|declare_namespace|^\s*$" results.log | tail -40
  cat results/failed_test_stories.yml 2>/dev/null || true
  echo "rasa test: prediction errors in test stories (see results/)"
  exit 1
}
grep -E "Finished evaluation|Correct:|F1-Score|Accuracy" results.log | tail -8 || true
mv results.log results/rasa-test.log
echo "rasa test: all test stories predicted correctly"
