#!/bin/sh
# One-shot: the namespace and the search attributes the update workflow sets (no secrets
# go into them: ids and the phase only). Keep the list equal to SEARCH_ATTRIBUTES in
# src/dev/temporal-server.ts. Safe to run again.
set -eu
ns="$TEMPORAL_NAMESPACE"
temporal operator namespace describe --namespace "$ns" >/dev/null 2>&1 ||
  temporal operator namespace create --namespace "$ns" --retention "$NAMESPACE_RETENTION"
for attr in CvmId AppId UpdatePhase RequestId Signer RolloutId; do
  temporal operator search-attribute create --namespace "$ns" --name "$attr" --type Keyword 2>/dev/null ||
    echo "search attribute $attr exists"
done
temporal operator search-attribute list --namespace "$ns"
