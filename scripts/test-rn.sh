#!/usr/bin/env bash
# The React Native stage of the tests: what of react-native-chatsync can be verified without a
# phone, a Gradle build or Xcode (none of which exist on these machines).
#
#   1. Codegen:  React Native's codegen (from npm) on src/NativeChatSync.ts, for Android and iOS.
#   2. Kotlin:   the generated Kotlin bindings; the codegen Java spec compiled with javac and the
#                Android module compiled with kotlinc -no-jdk against android.jar (API 23), the
#                spec and React Native's public Android API (class stubs made from the
#                ReactAndroid.api dump that the react-native npm package ships; the version is
#                the devDependency's, printed below); then on the JVM: the token encryption and
#                the Rust host as the module calls it, against the real server (it records the
#                timeline updates the JS tests replay).
#   3. JS:       tsc (React Native's own types), the builder-bob layout build (lib/module,
#                lib/typescript), node --test: reply/error handling, GiftedChat conversion, the
#                hooks' models over random and recorded native sequences, the Expo config plugin
#                run by @expo/config-plugins on a sample app, `npm pack` contents, the manifest.
#   4. Swift:    the iOS module's portable Swift with the generated Swift bindings in the Linux
#                Swift toolchain, run against the real server; the Objective-C++ module's
#                selectors checked against the protocol codegen generated.
#
# Installs what it needs itself, idempotently, into a cache outside the repository (CI runs in a
# fresh clone): $CHATSYNC_TOOLCHAINS, default /var/cache/chatsync-toolchains.
#   CHATSYNC_RN_SKIP_SWIFT=1  skip stage 4 (the Swift toolchain is a 565 MB download the first time).
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
rm -rf "$work"
mkdir -p "$work"
stage() { printf '\n== %s\n' "$*"; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local port=$((20000 + RANDOM % 20000))
    while listening "$port"; do port=$((port + 1)); done
    echo "$port"
}
t0=$(date +%s)
status=0
# Totals over the runners: each prints "<name>: N passed, N failed"; a runner that did not
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

# ---------------------------------------------------------------------------------------------
stage "JS install; codegen on src/NativeChatSync.ts"
if ! command -v npm >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
npm ci --no-audit --no-fund --loglevel=error
rn_version="$(node -p 'require("react-native/package.json").version')"
codegen="$work/codegen"
mkdir -p "$codegen"
node node_modules/@react-native/codegen/lib/cli/combine/combine-js-to-schema-cli.js "$codegen/schema.json" src/NativeChatSync.ts
# The arguments React Native's Gradle plugin and CocoaPods scripts pass for a library with this
# package.json's codegenConfig.
lib_name="$(node -p 'require("./package.json").codegenConfig.name')"
java_pkg="$(node -p 'require("./package.json").codegenConfig.android.javaPackageName')"
node node_modules/react-native/scripts/generate-specs-cli.js -p android -s "$codegen/schema.json" -o "$codegen/android" -n "$lib_name" -j "$java_pkg" -t modules
node node_modules/react-native/scripts/generate-specs-cli.js -p ios -s "$codegen/schema.json" -o "$codegen/ios" -n "$lib_name" -t modules
spec_java="$codegen/android/java/${java_pkg//.//}/NativeChatSyncSpec.java"
spec_h="$codegen/ios/$lib_name/$lib_name.h"
[ -f "$spec_java" ] && [ -f "$spec_h" ] || { echo "codegen did not write $spec_java and $spec_h"; exit 1; }
echo "codegen (react-native $rn_version): $(basename "$spec_java"), $lib_name/$(basename "$spec_h"), the JSI glue"

# ---------------------------------------------------------------------------------------------
stage "Toolchains: kotlinc, JNA, android.jar (API 23), React Native $rn_version's Android API, Expo's bare template"
kotlin_home="$(scripts/toolchains/kotlin.sh | tail -n1)"
kotlinc="$kotlin_home/bin/kotlinc"
stdlib="$kotlin_home/lib/kotlin-stdlib.jar"
coroutines="$kotlin_home/lib/kotlinx-coroutines-core-jvm.jar"
jna=/usr/share/java/jna.jar
[ -f "$jna" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libjna-java >&2
android_dir="$CHATSYNC_TOOLCHAINS/android-23"
android_jar="$android_dir/usr/share/java/com.android.android-23.jar"
rn_stubs="$CHATSYNC_TOOLCHAINS/react-native-$rn_version-api/classes"
# The sample app the Expo config plugin runs on: Expo's bare template, as `npx expo prebuild`
# would have written it.
expo_template_version=57.0.28
expo_template="$CHATSYNC_TOOLCHAINS/expo-template-bare-minimum-$expo_template_version/package"
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
# React Native's Android API: since 0.71 its classes are on Maven Central only, but the npm
# package ships ReactAndroid/api/ReactAndroid.api, the dump of every public signature; class
# stubs made from it stand in for the AAR (scripts/rn/api-stubs.py says what they lack).
if [ ! -f "$rn_stubs/../.done" ]; then
    log "making React Native $rn_version's Android API stubs from ReactAndroid.api"
    rm -rf "$rn_stubs" && mkdir -p "$rn_stubs"
    python3 scripts/rn/api-stubs.py node_modules/react-native/ReactAndroid/api/ReactAndroid.api "$android_jar" "$rn_stubs"
    touch "$rn_stubs/../.done"
fi
if [ ! -f "$expo_template/../.done" ]; then
    log "fetching expo-template-bare-minimum@$expo_template_version from npm"
    rm -rf "$expo_template/.." && mkdir -p "$expo_template/.."
    ( cd "$expo_template/.." && npm pack --silent "expo-template-bare-minimum@$expo_template_version" >/dev/null && tar -xzf ./*.tgz && rm -f ./*.tgz )
    [ -f "$expo_template/ios/HelloWorld/Info.plist" ] || { log "the Expo template has no ios/HelloWorld/Info.plist"; exit 1; }
    touch "$expo_template/../.done"
fi
) 8>"$CHATSYNC_TOOLCHAINS/.rn-install.lock"

# ---------------------------------------------------------------------------------------------
stage "Kotlin: generated bindings, the spec, the Android module (-no-jdk), JVM tests"
bindings_out="$root/target/rn-bindings"
bindings/build.sh --out "$bindings_out"
generated="$bindings_out/kotlin/dev/chatsync/chatsync.kt"
native_lib_dir="$bindings_out/lib"

# The generated bindings use java.lang.ref.Cleaner when present (a JDK API, found at run time by
# reflection on Android), so they compile with the JDK; the module itself compiles without it.
bindings_classes="$work/bindings-classes"
"$kotlinc" -nowarn -jvm-target 1.8 -cp "$jna:$coroutines" -d "$bindings_classes" "$generated" bindings/kotlin/dev/chatsync/*.kt 2>&1 | grep -v '^warning:' || true
[ -f "$bindings_classes/dev/chatsync/ChatHost.class" ] || { echo "the generated bindings did not compile"; exit 1; }

# The codegen spec (Java) against the API stubs, with the two annotations it uses from Maven-only
# artifacts (fbjni's @DoNotStrip, JSR-305's @Nonnull) as compile-only stand-ins.
spec_classes="$work/spec-classes"
javac -nowarn -source 8 -target 8 -bootclasspath "$android_jar" -cp "$rn_stubs" -d "$spec_classes" \
    scripts/rn/compile-stubs/com/facebook/proguard/annotations/DoNotStrip.java \
    scripts/rn/compile-stubs/javax/annotation/Nonnull.java "$spec_java" 2>&1 | grep -v '^Note:' || true
[ -f "$spec_classes/${java_pkg//.//}/NativeChatSyncSpec.class" ] || { echo "the codegen spec did not compile"; exit 1; }

module_src="android/src/main/java/dev/chatsync/reactnative"
# API 26+ (NotificationChannel) is not in android.jar 23: compiled through a stand-in instead.
excluded="$module_src/NotificationChannels.kt"
mapfile -t sources < <(find "$module_src" -name '*.kt' ! -path "$excluded" | sort)
sources+=("android/src/compileCheck/NotificationChannelsApi23.kt")
"$kotlinc" -no-jdk -no-reflect -jvm-target 1.8 -Werror \
    -cp "$android_jar:$rn_stubs:$spec_classes:$bindings_classes:$stdlib:$coroutines:$jna" \
    -d "$work/module-classes" "${sources[@]}"
echo "android module compiled against android.jar (API 23) + the codegen spec + react-native $rn_version's API: ${#sources[@]} files"
for f in "${sources[@]}"; do echo "  compiled: $f"; done
echo "  not compiled here (API 26+, replaced by android/src/compileCheck/NotificationChannelsApi23.kt): $excluded"
legacy="$(grep -rlE 'ReactContextBaseJavaModule|RCTDeviceEventEmitter|@ReactMethod|\bReactPackage\b' "$module_src" || true)"
[ -z "$legacy" ] || { echo "legacy bridge classes in: $legacy"; exit 1; }

# The plain-Kotlin files (no android.* import) run on the JVM with the real generated bindings,
# the real core (libchatsync) and the real reference server on loopback.
pure=("$module_src/TokenCipher.kt" "$module_src/EncryptedFileSecretStore.kt")
for f in "${pure[@]}"; do
    if grep -q '^import android\.' "$f"; then echo "$f imports android.*: it cannot run in the JVM tests"; exit 1; fi
done
"$kotlinc" -nowarn -jvm-target 1.8 -cp "$bindings_classes:$coroutines:$jna" -d "$work/test-classes" \
    "${pure[@]}" android/src/test/java/dev/chatsync/reactnative/*.kt
cargo build -q -p chatsync-server
# A private copy: other builds in the shared target dir may replace the binary meanwhile.
server_copy="$work/chatsync-server"
cp "$root/target/debug/chatsync-server" "$server_copy"
CHATSYNC_SERVER_BIN="$server_copy" \
    java -Djna.library.path="$native_lib_dir" -cp "$work/test-classes:$bindings_classes:$stdlib:$coroutines:$jna" \
    dev.chatsync.reactnative.HostTestsKt "$work/recorded" 2>&1 | tee "$work/android-tests.log" || status=1
tally android "$work/android-tests.log"

# ---------------------------------------------------------------------------------------------
stage "JS: type-check, build (lib/module, lib/typescript), tests"
npx tsc --noEmit -p tsconfig.json
echo "tsc --noEmit (react-native $rn_version's types): no errors"
npm run --silent build
npx tsc -p tsconfig.test.json
# The packaging test runs `npm pack --dry-run`; the plugin test runs @expo/config-plugins.
CHATSYNC_RECORDED="$work/recorded" CHATSYNC_CODEGEN="$codegen" CHATSYNC_EXPO_TEMPLATE="$expo_template" \
    node --test --test-reporter=spec .cache/js-test/src/__tests__/ 2>&1 | tee "$work/js-tests.log" || status=1
js_pass=$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$work/js-tests.log")
js_fail=$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$work/js-tests.log")
echo "js: ${js_pass:-0} passed, ${js_fail:-0} failed" | tee "$work/js-summary.log"
[ -n "$js_pass" ] || : > "$work/js-summary.log"
tally js "$work/js-summary.log"

# ---------------------------------------------------------------------------------------------
stage "Swift: the iOS module's portable Swift with the generated Swift bindings"
# Apple-only files: fenced with #if canImport(...), so on Linux they compile to nothing.
apple_only=(ios/ChatSyncKeychain.swift ios/ChatSyncNetworkMonitor.swift ios/ChatSyncLifecycle.swift
            ios/ChatSyncNotifications.swift ios/ChatSyncBackgroundTasks.swift ios/ChatSyncModuleBridge.swift)
swift_check() {
    local swift_root inner w port
    swift_root="$(scripts/toolchains/swift.sh | tail -n1)"
    inner="/work/chatsync-rn-$$"
    w="$swift_root$inner"
    trap 'rm -rf "$w"' RETURN
    mkdir -p "$w/lib" "$w/gen" "$w/src"
    cp "$native_lib_dir/libchatsync.so" "$w/lib/"
    cp "$server_copy" "$w/chatsync-server"
    cp "$bindings_out"/swift/Chatsync.swift "$bindings_out"/swift/chatsyncFFI.h "$bindings_out"/swift/chatsyncFFI.modulemap "$w/gen/"
    # With the bindings' own Swift wrappers: bindings/build-ios.sh ships them into the same module.
    cp ios/*.swift ios/Tests/main.swift bindings/swift/*.swift "$w/src/"
    local sources=("$inner/gen/Chatsync.swift")
    for f in "$w"/src/*.swift; do sources+=("$inner/src/$(basename "$f")"); done
    # The root's own /proc, in a private mount namespace (the bindings stage may use the root too).
    local in_root=(scripts/toolchains/in-swift-root.sh "$swift_root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root TMPDIR=/tmp)
    echo "compiling with $("${in_root[@]}" swiftc --version 2>&1 | head -n1)"
    # Swift 5 language mode, as the podspec and Package.swift declare for the app's build.
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
    echo "  not compiled here (Objective-C++, React Native headers): ios/ChatSyncModule.mm, ios/ChatSyncModule.h"
    port=$(free_port)
    "${in_root[@]}" CHATSYNC_SERVER_BIN="$inner/chatsync-server" CHATSYNC_TEST_PORT="$port" "$inner/ios-tests"
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
