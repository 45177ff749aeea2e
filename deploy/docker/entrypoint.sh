#!/bin/sh
# Entrypoint of every alpaca-improved image: secrets arrive as FILES (Compose `secrets:`,
# Kubernetes Secret volumes), never as values in a manifest or an image. For each variable NAME_FILE
# that names a file, export NAME with the file's contents, then exec the command. The same
# convention as the official postgres image (POSTGRES_PASSWORD_FILE). NAME_FILE stays set, so code
# that re-reads a rotated key can find the file again.
#
# Bad input is one line on stderr naming the variable and the fix, exit 2; the value never prints.
set -eu

names=$(env | sed -n 's/^\([A-Z][A-Z0-9_]*\)_FILE=.*/\1/p' | sort -u)
for name in $names; do
  eval "path=\${${name}_FILE}"
  if [ ! -f "$path" ] || [ ! -r "$path" ]; then
    echo "error: ${name}_FILE=${path} is not a readable file; mount the secret there or unset ${name}_FILE" >&2
    exit 2
  fi
  if eval "[ -n \"\${${name}:-}\" ]"; then
    echo "error: both ${name} and ${name}_FILE are set; set only ${name}_FILE (secrets come from files)" >&2
    exit 2
  fi
  value=$(cat "$path")  # $(...) drops trailing newlines, as editors leave one
  if [ -z "$value" ]; then
    echo "error: ${name}_FILE=${path} is empty; write the secret into it" >&2
    exit 2
  fi
  export "${name}=${value}"
done
unset names name path value

if [ "$#" -eq 0 ]; then
  echo "error: no command given; pass the service's command (see deploy/compose.yaml)" >&2
  exit 2
fi
exec "$@"
