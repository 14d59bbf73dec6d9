#!/bin/sh
# Writes nginx's media key map (`kid "secret";` lines, included by lms.conf's
# `map $media_kid $media_secret`) from LMS_MEDIA_KEYS="kid:secret,kid:secret", the nodes' variable.
#   media-keys.sh [OUTPUT]     default OUTPUT: /etc/nginx/lms/media_keys.conf
# compose mounts it into /docker-entrypoint.d/, which the nginx image runs before nginx starts.
# Fails (and so nginx does not start) when the keys are missing or could break out of the map:
# key ids of 1-16 a-z 0-9, secrets of 32 or more A-Z a-z 0-9 _ - + / = . ~, as the nodes accept.
set -eu
output=${1:-/etc/nginx/lms/media_keys.conf}
refuse() {
    echo "media-keys.sh: LMS_MEDIA_KEYS: $1 (see deploy/env.example)" >&2
    exit 1
}
[ -n "${LMS_MEDIA_KEYS:-}" ] || refuse "unset; nginx needs the nodes' signing keys"
lines=""
old_ifs=$IFS
IFS=,
for entry in $LMS_MEDIA_KEYS; do
    entry=$(printf '%s' "$entry" | tr -d ' ')
    kid=${entry%%:*}
    secret=${entry#*:}
    [ "$kid" != "$entry" ] || refuse "expected kid:secret entries"
    case $kid in "" | *[!a-z0-9]*) refuse "a key id is 1-16 of a-z 0-9" ;; esac
    [ "${#kid}" -le 16 ] || refuse "a key id is 1-16 of a-z 0-9"
    case $secret in *[!A-Za-z0-9_+/=.~-]*) refuse "key $kid: a secret holds A-Z a-z 0-9 _ - + / = . ~" ;; esac
    [ "${#secret}" -ge 32 ] || refuse "key $kid: a secret is at least 32 characters"
    lines="$lines$kid \"$secret\";
"
done
IFS=$old_ifs
mkdir -p "$(dirname "$output")"
umask 077
printf '%s' "$lines" >"$output.part"
mv "$output.part" "$output"
