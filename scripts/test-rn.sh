#!/usr/bin/env bash
# The React Native stage of the tests: what of react-native-chatsync can be verified without a
# phone, a Gradle build or Xcode (none of which exist on these machines).
#
#   1. JS:      npm ci, `tsc --noEmit`, the unit tests of the pure reducers (node --test).
#   2. Kotlin:  the generated bindings, then the Android module and background job compiled
#               against android.jar (API 23) and React Native 0.70.15's classes with -no-jdk,
#               so any JDK-only API fails the build; then the module's plain-Kotlin logic run
#               on the JVM (android/src/test).
#   3. Swift:   the iOS module's platform-independent files compiled with the generated Swift
#               bindings in the Linux Swift toolchain; Apple-only files are listed as not compiled.
#
# Installs what it needs itself, idempotently, into a cache outside the repository (CI runs in a
# fresh clone): $CHATSYNC_TOOLCHAINS, default /var/cache/chatsync-toolchains.
#   CHATSYNC_RN_SKIP_SWIFT=1  skip stage 3 (the Swift toolchain is a 565 MB download the first time).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
# Not sourcing scripts/toolchains/common.sh: it takes the installers' lock for the life of the
# sourcing process, and this script calls those installers. The same cache, our own lock below.
CHATSYNC_TOOLCHAINS="${CHATSYNC_TOOLCHAINS:-/var/cache/chatsync-toolchains}"
export CHATSYNC_TOOLCHAINS
mkdir -p "$CHATSYNC_TOOLCHAINS"
log() { printf '[toolchains] %s\n' "$*" >&2; }
work="$root/target/rn-check"
mkdir -p "$work"
stage() { printf '\n== %s\n' "$*"; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local port=$((20000 + RANDOM % 20000))
    while listening "$port"; do port=$((port + 1)); done
    echo "$port"
}
t0=$(date +%s)

# ---------------------------------------------------------------------------------------------
stage "JS: install, type-check, unit tests"
if ! command -v npm >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
npm ci --no-audit --no-fund --loglevel=error
npx tsc --noEmit -p tsconfig.json
echo "tsc --noEmit: no errors"
rm -rf .cache/js-test
npx tsc -p tsconfig.json --noEmit false --outDir .cache/js-test
status=0
node --test --test-reporter=spec .cache/js-test/__tests__/ 2>&1 | tee "$work/js-tests.log" || status=1
js_pass=$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$work/js-tests.log")
js_fail=$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$work/js-tests.log")
echo "js: ${js_pass:-0} passed, ${js_fail:-0} failed"

# Totals over the three runners: each prints "<name>: N passed, N failed"; a runner that did not
# report counts as one failure.
total_passed=0 total_failed=0
tally() { # NAME LOG
    local line p f
    line="$(grep -E "^$1: [0-9]+ passed, [0-9]+ failed$" "$2" | tail -n1 || true)"
    if [ -z "$line" ]; then echo "[$1] did not report its results" >&2; total_failed=$((total_failed + 1)); status=1; return; fi
    read -r p f <<<"$(sed -E 's/^[a-z]+: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/' <<<"$line")"
    total_passed=$((total_passed + p)) total_failed=$((total_failed + f))
    [ "$f" = 0 ] || status=1
}
# node's own summary ("ℹ pass N") in the shared form, for tally.
if [ -n "${js_pass:-}" ]; then echo "js: $js_pass passed, ${js_fail:-0} failed"; fi > "$work/js-summary.log"
tally js "$work/js-summary.log"

# ---------------------------------------------------------------------------------------------
stage "Toolchains: kotlinc, JNA, android.jar (API 23), React Native 0.70.15 classes"
kotlin_home="$(scripts/toolchains/kotlin.sh | tail -n1)"
kotlinc="$kotlin_home/bin/kotlinc"
stdlib="$kotlin_home/lib/kotlin-stdlib.jar"
coroutines="$kotlin_home/lib/kotlinx-coroutines-core-jvm.jar"
jna=/usr/share/java/jna.jar

android_dir="$CHATSYNC_TOOLCHAINS/android-23"
android_jar="$android_dir/usr/share/java/com.android.android-23.jar"
rn_version=0.70.15
rn_dir="$CHATSYNC_TOOLCHAINS/react-native-$rn_version"
rn_jar="$rn_dir/classes.jar"
# One installer at a time per cache (a parallel run of this script): a lock of our own, held by
# this subshell only.
(
flock 8
# android.jar: Debian bullseye's libandroid-23-java, fetched with a private apt configuration so
# the host's sources stay untouched.
if [ ! -f "$android_dir/.done" ]; then
    log "fetching libandroid-23-java from Debian bullseye"
    apt_dir="$CHATSYNC_TOOLCHAINS/apt-bullseye"
    rm -rf "$android_dir" "$apt_dir"
    mkdir -p "$apt_dir"/{lists/partial,archives/partial,cache,etc/preferences.d,state} "$android_dir"
    # The archive this machine's apt already uses (DEBIAN_MIRROR overrides it).
    # shellcheck source=scripts/toolchains/apt-mirror.sh
    source "$root/scripts/toolchains/apt-mirror.sh"
    mirror="$(debian_mirror)"
    echo "deb $mirror bullseye main" > "$apt_dir/etc/sources.list"
    touch "$apt_dir/state/status"
    cat > "$apt_dir/apt.conf" <<EOF
Dir::Etc::SourceList "$apt_dir/etc/sources.list";
Dir::Etc::SourceParts "-";
Dir::Etc::PreferencesParts "$apt_dir/etc/preferences.d";
Dir::State "$apt_dir/state";
Dir::State::Lists "$apt_dir/lists";
Dir::State::status "$apt_dir/state/status";
Dir::Cache "$apt_dir/cache";
Dir::Cache::archives "$apt_dir/archives";
APT::Sandbox::User "root";
EOF
    APT_CONFIG="$apt_dir/apt.conf" apt-get update -qq >&2
    ( cd "$apt_dir" && APT_CONFIG="$apt_dir/apt.conf" apt-get download -qq libandroid-23-java >&2 )
    dpkg -x "$apt_dir"/libandroid-23-java_*.deb "$android_dir"
    [ -f "$android_jar" ] || { log "android jar missing after dpkg -x"; exit 1; }
    rm -rf "$apt_dir"
    touch "$android_dir/.done"
fi

# React Native's Android classes: the release AAR inside the npm package.
if [ ! -f "$rn_dir/.done" ]; then
    log "fetching react-native@$rn_version's Android classes from npm"
    rm -rf "$rn_dir" && mkdir -p "$rn_dir"
    ( cd "$rn_dir" && npm pack --silent "react-native@$rn_version" >/dev/null )
    aar="package/android/com/facebook/react/react-native/$rn_version/react-native-$rn_version-release.aar"
    tar -xzf "$rn_dir/react-native-$rn_version.tgz" -C "$rn_dir" "$aar"
    ( cd "$rn_dir" && jar xf "$aar" classes.jar )
    rm -rf "$rn_dir/package" "$rn_dir/react-native-$rn_version.tgz"
    [ -f "$rn_jar" ] || { log "classes.jar missing from the React Native AAR"; exit 1; }
    touch "$rn_dir/.done"
fi

) 8>"$CHATSYNC_TOOLCHAINS/.rn-install.lock"

# ---------------------------------------------------------------------------------------------
stage "Kotlin: generated bindings, Android module (-no-jdk against android.jar), JVM tests"
bindings_out="$root/target/rn-bindings"
bindings/build.sh --out "$bindings_out"
generated="$bindings_out/kotlin/dev/chatsync/chatsync.kt"
# The library the bindings were generated from (build.sh copies it next to them).
native_lib_dir="$bindings_out/lib"
[ -f "$native_lib_dir/libchatsync.so" ] || native_lib_dir="$root/target/debug"

# The generated bindings use java.lang.ref.Cleaner when present (a JDK API, found at run time by
# reflection on Android), so they compile with the JDK; the module itself compiles without it.
bindings_classes="$work/bindings-classes"
rm -rf "$bindings_classes"
# With the bindings' own Kotlin wrappers, as bindings/build-android.sh ships them to apps.
"$kotlinc" -nowarn -jvm-target 1.8 -cp "$jna:$coroutines" -d "$bindings_classes" "$generated" bindings/kotlin/dev/chatsync/*.kt 2>&1 | grep -v '^warning:' || true
[ -f "$bindings_classes/dev/chatsync/ChatClient.class" ] || { echo "the generated bindings did not compile"; exit 1; }

module_src="android/src/main/java/dev/chatsync/reactnative"
# API 26+ (NotificationChannel) is not in android.jar 23: compiled through a stand-in instead.
excluded="$module_src/NotificationChannels.kt"
mapfile -t sources < <(find "$module_src" -name '*.kt' ! -path "$excluded" | sort)
sources+=("android/src/compileCheck/NotificationChannelsApi23.kt")
module_classes="$work/module-classes"
rm -rf "$module_classes"
"$kotlinc" -no-jdk -no-reflect -jvm-target 1.8 -Werror \
    -cp "$android_jar:$rn_jar:$bindings_classes:$stdlib:$coroutines:$jna" \
    -d "$module_classes" "${sources[@]}"
echo "android module compiled against android.jar (API 23) + react-native $rn_version: ${#sources[@]} files"
for f in "${sources[@]}"; do echo "  compiled: $f"; done
echo "  not compiled here (API 26+, replaced by android/src/compileCheck/NotificationChannelsApi23.kt): $excluded"

# The plain-Kotlin files (no android.* import) run on the JVM with the real generated bindings,
# the real core (libchatsync) and the real reference server on loopback.
pure=("$module_src/ChatSyncOptions.kt" "$module_src/BridgeValues.kt" "$module_src/ErrorCodes.kt"
      "$module_src/NotificationContent.kt" "$module_src/ChatSyncRuntime.kt" "$module_src/BackgroundSync.kt")
for f in "${pure[@]}"; do
    if grep -q '^import android\.' "$f"; then echo "$f imports android.*: it cannot run in the JVM tests"; exit 1; fi
done
test_classes="$work/test-classes"
rm -rf "$test_classes"
"$kotlinc" -nowarn -jvm-target 1.8 -cp "$bindings_classes:$coroutines:$jna" -d "$test_classes" \
    "${pure[@]}" android/src/test/java/dev/chatsync/reactnative/*.kt
cargo build -q -p chatsync-server
# A private copy: other builds in the shared target dir may replace the binary meanwhile.
server_copy="$work/chatsync-server"
cp "$root/target/debug/chatsync-server" "$server_copy"
CHATSYNC_SERVER_BIN="$server_copy" \
    java -Djna.library.path="$native_lib_dir" -cp "$test_classes:$bindings_classes:$stdlib:$coroutines:$jna" \
    dev.chatsync.reactnative.ModuleLogicTestsKt "$root" 2>&1 | tee "$work/android-tests.log" || status=1
tally android "$work/android-tests.log"

# ---------------------------------------------------------------------------------------------
stage "Swift: the iOS module's platform-independent files with the generated Swift bindings"
# Apple-only files: fenced with #if canImport(...), so on Linux they compile to nothing.
apple_only=(ios/ChatSyncModule.swift ios/ChatSyncBackgroundTasks.swift ios/ChatSyncNetworkMonitor.swift)
swift_check() {
    local swift_root inner w port
    swift_root="$(scripts/toolchains/swift.sh | tail -n1)"
    inner="/work/chatsync-rn-$$"
    w="$swift_root$inner"
    trap 'rm -rf "$w"' RETURN
    mkdir -p "$w/lib" "$w/gen" "$w/src" "$w/repo/src"
    cp "$native_lib_dir/libchatsync.so" "$w/lib/"
    cp "$server_copy" "$w/chatsync-server"
    cp "$bindings_out"/swift/Chatsync.swift "$bindings_out"/swift/chatsyncFFI.h "$bindings_out"/swift/chatsyncFFI.modulemap "$w/gen/"
    # With the bindings' own Swift wrappers: bindings/build-ios.sh ships them into the same module.
    cp ios/*.swift ios/Tests/main.swift bindings/swift/*.swift "$w/src/"
    cp src/errors.ts src/convert.ts "$w/repo/src/"
    local sources=("$inner/gen/Chatsync.swift")
    for f in "$w"/src/*.swift; do sources+=("$inner/src/$(basename "$f")"); done
    # The root's own /proc, in a private mount namespace (the bindings stage may use the root too).
    local in_root=(scripts/toolchains/in-swift-root.sh "$swift_root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root TMPDIR=/tmp)
    echo "compiling with $("${in_root[@]}" swiftc --version 2>&1 | head -n1)"
    # Swift 5 language mode, as the podspec declares for the app's build.
    "${in_root[@]}" swiftc -swift-version 5 -warnings-as-errors -module-name ChatSyncIOS \
        -I "$inner/gen" -Xcc -fmodule-map-file="$inner/gen/chatsyncFFI.modulemap" \
        -L "$inner/lib" -lchatsync -Xlinker -rpath -Xlinker "$inner/lib" \
        "${sources[@]}" -o "$inner/ios-tests" || { echo "the iOS module's Swift did not compile"; return 1; }
    for f in ios/*.swift; do
        if printf '%s\n' "${apple_only[@]}" | grep -qx "$f"; then
            echo "  fenced, compiled to nothing here (Apple frameworks): $f"
        else
            echo "  compiled: $f"
        fi
    done
    echo "  not compiled here (Objective-C export for React Native): ios/ChatSyncModule.m"
    port=$(free_port)
    "${in_root[@]}" CHATSYNC_SERVER_BIN="$inner/chatsync-server" CHATSYNC_TEST_PORT="$port" CHATSYNC_REPO="$inner/repo" \
        "$inner/ios-tests"
}
if [ "${CHATSYNC_RN_SKIP_SWIFT:-0}" = 1 ]; then
    echo "skipped (CHATSYNC_RN_SKIP_SWIFT=1)"
else
    swift_check 2>&1 | tee "$work/ios-tests.log" || status=1
    tally ios "$work/ios-tests.log"
fi

printf '\n[rn] stage took %ss\n' "$(( $(date +%s) - t0 ))" >&2
echo "rn: $total_passed passed, $total_failed failed"
exit "$status"
