#!/usr/bin/env bash
# Applies deploy/kafka/acls.json, Redress's Kafka access list, to a cluster with Kafka's own tools.
#
# Usage:
#   BOOTSTRAP=kafka:9092 ADMIN_CONFIG=/path/admin.properties deploy/kafka/apply-acls.sh [options] [acls.json]
#
#   acls.json           the access list (default: acls.json beside this script)
#   --dry-run           print the commands instead of running them (needs neither Kafka nor BOOTSTRAP)
#   --with-scram-users  first create or update each principal's SCRAM-SHA-512 credentials, the password
#                       of principal <name> read from REDRESS_KAFKA_<NAME>_PASSWORD (upper case, '-' as '_':
#                       REDRESS_KAFKA_INTAKE_PASSWORD, REDRESS_KAFKA_REDRESSCTL_PASSWORD...). For a
#                       self-managed cluster; a managed one creates its users its own way.
#   -h, --help          this text
#
# Environment:
#   BOOTSTRAP        host:port of a listener the admin can reach
#   ADMIN_CONFIG     client properties of a super user or a principal allowed to Alter the cluster
#                    (security.protocol, sasl.mechanism, sasl.jaas.config, ssl.truststore.location...)
#   KAFKA_BIN        directory of kafka-acls.sh and kafka-configs.sh (default: PATH, then /opt/kafka/bin)
#   SCRAM_ITERATIONS SCRAM iterations (default 8192)
#
# Principal <name> of acls.json is Kafka user redress-<name>, or <name> itself when it already starts
# with "redress" (redressctl). For each it adds, with `kafka-acls.sh --add` (adding an ACL that exists
# is a no-op, so the script is safe to run again):
#   Write, Describe  on each topic of "write" (the topics of the events it owns and the .dlq twins of what it reads)
#   Read, Describe   on each topic of "read"
#   Read             on each consumer group of "groups" (prefixed patterns when "groupPrefix" is true)
#   IdempotentWrite  on the cluster (Redress's producer is idempotent; it needs no topic for this)
# and, when the principal has them:
#   Create, Describe on each topic of "write" and its .dlq twin, when "createTopics" is true
#                    (redressctl: `redressctl topics apply` creates the missing topics); literal names,
#                    so it may create Redress's topics and no other
#   Describe         on each consumer group of "lagGroups" (supervisor: it reads their committed offsets,
#                    OffsetFetch, without joining them) and on the topics those groups read, i.e. the
#                    "read" lists of the principals whose "groups" hold them (the watermarks, ListOffsets)
# It never removes an ACL: after taking a right out of acls.json, remove it with
# `kafka-acls.sh --remove` (see deploy/README.md, "Kafka principals and ACLs").
#
# acls.json is read with python3 when there is one, else with the awk below (the apache/kafka image
# has bash and awk but no python3 or jq).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
file="$here/acls.json"
dry_run=false
scram_users=false

usage() {
    sed -n '2,/^set -euo pipefail/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

while [ "$#" -gt 0 ]; do
    case "$1" in
        --dry-run) dry_run=true ;;
        --with-scram-users) scram_users=true ;;
        -h | --help) usage; exit 0 ;;
        -*) echo "apply-acls: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) file=$1 ;;
    esac
    shift
done

[ -r "$file" ] || { echo "apply-acls: cannot read $file" >&2; exit 2; }

# The list as lines "<principal> TAB <field> TAB <value>", field one of principal (the name alone),
# write, read, groups, lagGroups, groupPrefix, createTopics.
plan_python() {
    python3 -c '
import json, sys
try:
    doc = json.load(open(sys.argv[1], encoding="utf-8"))
    principals = doc["principals"]
    assert isinstance(principals, dict)
except Exception as error:
    sys.exit("apply-acls: %s is not an access list: %s" % (sys.argv[1], error))
for name, p in principals.items():
    print("%s\tprincipal\t" % name)
    for field in ("write", "read", "groups", "lagGroups"):
        values = p.get(field, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            sys.exit("apply-acls: principals.%s.%s must be a list of strings" % (name, field))
        for value in values:
            print("%s\t%s\t%s" % (name, field, value))
    for field in ("groupPrefix", "createTopics"):
        flag = p.get(field, False)
        if not isinstance(flag, bool):
            sys.exit("apply-acls: principals.%s.%s must be true or false" % (name, field))
        print("%s\t%s\t%s" % (name, field, "true" if flag else "false"))
' "$1"
}

# The same with awk alone: a small JSON reader that knows objects, arrays, strings and literals,
# and prints the principals' entries.
plan_awk() {
    awk '
    function fail(message) { printf "apply-acls: %s: %s (near character %d)\n", FILENAME, message, i > "/dev/stderr"; failed = 1; exit 2 }
    function path(   d, p) { p = ""; for (d = 1; d <= depth; d++) if (type[d] == "o") p = p (p == "" ? "" : "/") key[d]; return p }
    function value(v,   p, parts, n) {
        p = path(); n = split(p, parts, "/")
        if (n == 3 && parts[1] == "principals" && (parts[3] == "write" || parts[3] == "read" || parts[3] == "groups" || parts[3] == "lagGroups") && type[depth] == "a")
            print parts[2] "\t" parts[3] "\t" v
        else if (n == 3 && parts[1] == "principals" && (parts[3] == "groupPrefix" || parts[3] == "createTopics"))
            print parts[2] "\t" parts[3] "\t" v
    }
    { text = text $0 "\n" }
    END {
        if (failed) exit 2
        n = length(text); depth = 0; i = 1
        while (i <= n) {
            c = substr(text, i, 1)
            if (c == " " || c == "\t" || c == "\n" || c == "\r") { i++; continue }
            if (c == "{") {
                p = path()
                if (depth == 2 && p ~ /^principals\//) print substr(p, 12) "\tprincipal\t"
                depth++; type[depth] = "o"; want[depth] = 1; key[depth] = ""; i++; continue
            }
            if (c == "[") { depth++; type[depth] = "a"; i++; continue }
            if (c == "}" || c == "]") { if (depth == 0) fail("unbalanced " c); depth--; i++; continue }
            if (c == ",") { if (type[depth] == "o") want[depth] = 1; i++; continue }
            if (c == ":") { want[depth] = 0; i++; continue }
            if (c == "\"") {
                s = ""; j = i + 1
                while (j <= n) {
                    ch = substr(text, j, 1)
                    if (ch == "\\") {
                        nx = substr(text, j + 1, 1)
                        if (nx == "n" || nx == "t" || nx == "r") s = s " "
                        else if (nx == "u") s = s "?"
                        else s = s nx
                        j += (nx == "u") ? 6 : 2; continue
                    }
                    if (ch == "\"") break
                    s = s ch; j++
                }
                if (j > n) fail("unterminated string")
                i = j + 1
                if (type[depth] == "o" && want[depth]) key[depth] = s; else value(s)
                continue
            }
            j = i
            while (j <= n && index(",}] \t\r\n", substr(text, j, 1)) == 0) j++
            if (j == i) fail("unexpected " c)
            value(substr(text, i, j - i)); i = j
        }
        if (depth != 0) fail("unbalanced braces")
    }' "$1"
}

if command -v python3 >/dev/null 2>&1 && [ "${ACLS_PARSER:-}" != awk ]; then
    plan=$(plan_python "$file")
else
    plan=$(plan_awk "$file")
fi

names=()
declare -A writes=() reads=() groups=() lag_groups=() prefixed=() creates=()
while IFS=$'\t' read -r name field value; do
    [[ $name =~ ^[a-z][a-z0-9-]*$ ]] || { echo "apply-acls: principal name '$name' must be lower-case letters, digits and '-'" >&2; exit 2; }
    case "$field" in
        principal) names+=("$name"); prefixed[$name]=false; creates[$name]=false ;;
        write | read | groups | lagGroups)
            # Full names only: no wildcard, nothing kafka-acls would read as an option or a pattern.
            [[ $value =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || { echo "apply-acls: $name.$field: '$value' is not a full topic or group name" >&2; exit 2; }
            case "$field" in
                write) writes[$name]+="$value"$'\n' ;;
                read) reads[$name]+="$value"$'\n' ;;
                groups) groups[$name]+="$value"$'\n' ;;
                lagGroups) lag_groups[$name]+="$value"$'\n' ;;
            esac ;;
        groupPrefix | createTopics)
            case "$value" in
                true | false) ;;
                *) echo "apply-acls: $name.$field must be true or false" >&2; exit 2 ;;
            esac
            if [ "$field" = groupPrefix ]; then prefixed[$name]=$value; else creates[$name]=$value; fi ;;
    esac
done <<<"$plan"
[ "${#names[@]}" -gt 0 ] || { echo "apply-acls: no principals in $file" >&2; exit 2; }

# A consumer dead-letters to the .dlq twin of what it reads: that must be in its write list.
for name in "${names[@]}"; do
    while IFS= read -r topic; do
        [ -n "$topic" ] || continue
        case "$topic" in *.dlq) continue ;; esac
        if ! grep -qxF "$topic.dlq" <<<"${writes[$name]:-}"; then
            echo "apply-acls: $name reads $topic but may not write $topic.dlq, where its consumer dead-letters" >&2
            exit 2
        fi
    done <<<"${reads[$name]:-}"
done

# Appends the lines of $2 to the list named by $1, each once.
add_unique() {
    local -n list=$1
    local item
    while IFS= read -r item; do
        if [ -n "$item" ] && ! grep -qxF "$item" <<<"$list"; then list+="$item"$'\n'; fi
    done <<<"$2"
}

# The principal that consumes as group $1: its "groups" hold $1 (or, with groupPrefix, a prefix of it).
owner_of_group() {
    local group=$1 name entry
    for name in "${names[@]}"; do
        while IFS= read -r entry; do
            [ -n "$entry" ] || continue
            if [ "$entry" = "$group" ] || { [ "${prefixed[$name]}" = true ] && [[ $group == "$entry"* ]]; }; then
                echo "$name"
                return 0
            fi
        done <<<"${groups[$name]:-}"
    done
    return 1
}

# What createTopics and lagGroups add: the topics to Create (each write topic and its .dlq twin) and,
# for lagGroups, the topics those groups read (their owners' read lists), to Describe.
declare -A create_topics=() lag_topics=()
for name in "${names[@]}"; do
    if [ "${creates[$name]}" = true ]; then
        [ -n "${writes[$name]:-}" ] || { echo "apply-acls: $name has createTopics but no write list: no topic to create" >&2; exit 2; }
        create_topics[$name]=""
        add_unique "create_topics[$name]" "${writes[$name]}"
        while IFS= read -r topic; do
            case "$topic" in '' | *.dlq) continue ;; esac
            add_unique "create_topics[$name]" "$topic.dlq"
        done <<<"${writes[$name]}"
    fi
    while IFS= read -r group; do
        [ -n "$group" ] || continue
        if ! owner=$(owner_of_group "$group"); then
            echo "apply-acls: $name.lagGroups: '$group' is in no principal's groups, so its topics are unknown" >&2
            exit 2
        fi
        lag_topics[$name]=${lag_topics[$name]:-}
        add_unique "lag_topics[$name]" "${reads[$owner]:-}"
    done <<<"${lag_groups[$name]:-}"
done

tool() {
    local name=$1
    if [ -n "${KAFKA_BIN:-}" ]; then
        echo "$KAFKA_BIN/$name.sh"
    elif command -v "$name.sh" >/dev/null 2>&1; then
        echo "$name.sh"
    elif command -v "$name" >/dev/null 2>&1; then
        echo "$name"  # Confluent Platform's packages drop the .sh
    else
        echo "/opt/kafka/bin/$name.sh"
    fi
}

if ! "$dry_run"; then
    : "${BOOTSTRAP:?set BOOTSTRAP to host:port of a Kafka listener}"
    : "${ADMIN_CONFIG:?set ADMIN_CONFIG to the admin client properties file}"
    [ -r "$ADMIN_CONFIG" ] || { echo "apply-acls: cannot read ADMIN_CONFIG $ADMIN_CONFIG" >&2; exit 2; }
fi
kafka_acls=$(tool kafka-acls)
kafka_configs=$(tool kafka-configs)

# Runs (or with --dry-run prints) a Kafka tool against BOOTSTRAP as the admin.
admin() {
    local command=$1 argument output
    shift
    if "$dry_run"; then
        printf '%s --bootstrap-server %s --command-config %s' "$command" "${BOOTSTRAP:-\$BOOTSTRAP}" "${ADMIN_CONFIG:-\$ADMIN_CONFIG}"
        for argument in "$@"; do
            case "$argument" in
                *password=*) argument="${argument%%password=*}password=*****]" ;;
            esac
            printf ' %q' "$argument"
        done
        printf '\n'
    # The tools print their errors on standard output, with the ACLs they set: shown only on failure.
    elif ! output=$("$command" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" "$@" 2>&1); then
        printf '%s\n' "$output" >&2
        echo "apply-acls: failed: $command $1 ${*: -2}" >&2
        return 1
    fi
}

# "a\nb\n" → --flag a --flag b, into the array named by $1.
options() {
    local -n into=$1
    local flag=$2 list=$3 item
    into=()
    while IFS= read -r item; do
        if [ -n "$item" ]; then into+=("$flag" "$item"); fi
    done <<<"$list"
}

user_of() {
    case "$1" in
        redress*) echo "$1" ;;
        *) echo "redress-$1" ;;
    esac
}

for name in "${names[@]}"; do
    user=$(user_of "$name")
    principal="User:$user"

    if "$scram_users"; then
        variable="REDRESS_KAFKA_$(tr 'a-z-' 'A-Z_' <<<"$name")_PASSWORD"
        password=${!variable:-}
        if [ -z "$password" ] && ! "$dry_run"; then
            echo "apply-acls: $variable is not set: the SCRAM password of $user" >&2
            exit 2
        fi
        # It goes inside SCRAM-SHA-512=[password=...]: no brackets, commas, quotes, '=' or spaces.
        if [ -n "$password" ] && ! [[ $password =~ ^[A-Za-z0-9._~+/-]+$ ]]; then
            echo "apply-acls: $variable may hold only letters, digits and . _ ~ + / - (e.g. openssl rand -hex 24)" >&2
            exit 2
        fi
        admin "$kafka_configs" --alter --entity-type users --entity-name "$user" \
            --add-config "SCRAM-SHA-512=[iterations=${SCRAM_ITERATIONS:-8192},password=${password:-\$$variable}]"
    fi

    topics=()
    options topics --topic "${writes[$name]:-}"
    if [ "${#topics[@]}" -gt 0 ]; then
        admin "$kafka_acls" --add --allow-principal "$principal" --operation Write --operation Describe "${topics[@]}"
    fi

    topics=()
    options topics --topic "${reads[$name]:-}"
    if [ "${#topics[@]}" -gt 0 ]; then
        admin "$kafka_acls" --add --allow-principal "$principal" --operation Read --operation Describe "${topics[@]}"
    fi

    consumer_groups=()
    options consumer_groups --group "${groups[$name]:-}"
    if [ "${#consumer_groups[@]}" -gt 0 ]; then
        pattern=literal
        [ "${prefixed[$name]}" = true ] && pattern=prefixed
        admin "$kafka_acls" --add --allow-principal "$principal" --operation Read --resource-pattern-type "$pattern" "${consumer_groups[@]}"
    fi

    topics=()
    options topics --topic "${create_topics[$name]:-}"
    if [ "${#topics[@]}" -gt 0 ]; then
        admin "$kafka_acls" --add --allow-principal "$principal" --operation Create --operation Describe "${topics[@]}"
    fi

    consumer_groups=()
    options consumer_groups --group "${lag_groups[$name]:-}"
    if [ "${#consumer_groups[@]}" -gt 0 ]; then
        admin "$kafka_acls" --add --allow-principal "$principal" --operation Describe --resource-pattern-type literal "${consumer_groups[@]}"
        topics=()
        options topics --topic "${lag_topics[$name]:-}"
        if [ "${#topics[@]}" -gt 0 ]; then
            admin "$kafka_acls" --add --allow-principal "$principal" --operation Describe "${topics[@]}"
        fi
    fi

    admin "$kafka_acls" --add --allow-principal "$principal" --operation IdempotentWrite --cluster
    "$dry_run" || echo "apply-acls: $principal done"
done
