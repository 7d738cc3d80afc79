#!/usr/bin/env perl
# Adjusts what UniFFI 0.32 generates, where its output is wrong for chatsync's apps. Run by
# bindings/build.sh on every generation; docs/adr/0013-ffi-errors-and-cancellation.md says why.
#
#   bindings/postprocess.pl kotlin GENERATED.kt
#   bindings/postprocess.pl swift  GENERATED.swift
#
# Every rewrite is checked: it must find the exact shape it rewrites (a count, or the literal
# text), and nothing of the old shape may remain. When a UniFFI upgrade changes the generated
# code, this script fails with a message naming the rewrite, and the build stops: a fix can
# never be undone silently. Perl: it is in every Debian (perl-base is essential).
use strict;
use warnings;

my ($lang, $file) = @ARGV;
die "usage: $0 kotlin|swift FILE\n" unless $lang && $file && -f $file;
open my $in, '<', $file or die "$file: $!\n";
my $code = do { local $/; <$in> };
close $in;

sub fail { die "bindings/postprocess.pl ($lang): $_[0]\n  in $file\n  The generated code changed shape (a UniFFI upgrade?): update the rewrite, see docs/adr/0013.\n" }

# Replaces the one exact occurrence of $old with $new.
sub replace_once {
    my ($what, $old, $new) = @_;
    my $n = () = $code =~ /\Q$old\E/g;
    fail("$what: expected the generated text once, found it $n times") unless $n == 1;
    $code =~ s/\Q$old\E/$new/;
}

if ($lang eq 'kotlin') {
    # 1. The message of an error is its readable text. UniFFI's getter of a non-flat error lists
    #    the fields ("detail=offline: ..., retryAfterSecs=null"); chatsync's errors each carry
    #    their text in one field: `detail` (ChatException) or `reason` (TokenProviderException).
    my $getters = () = $code =~ /override val message\n\s+get\(\) = /g;
    my $detail = ($code =~ s/(override val message\n\s+get\(\) = )"[^"\n]*\bdetail=\$\{ `detail` \}[^"\n]*"/$1`detail`/g) || 0;
    my $reason = ($code =~ s/(override val message\n\s+get\(\) = )"reason=\$\{ `reason` \}"/$1`reason`/g) || 0;
    fail("ChatException message: no getter listing `detail` was found") unless $detail > 0;
    fail("TokenProviderException message: no getter listing `reason` was found") unless $reason > 0;
    fail("error messages: $getters getters, $detail + $reason rewritten (a new error type without `detail`/`reason`?)")
        unless $getters == $detail + $reason;

    # 2. A call on a closed (destroyed) object throws the library's exception, not
    #    IllegalStateException: one exception type for the app to catch.
    my $destroyed = 'throw IllegalStateException("${this.javaClass.simpleName} object has already been destroyed")';
    my $shut = 'throw ChatException.ShutDown("${this.javaClass.simpleName} is closed: close() or destroy() was called on it")';
    my $objects = () = $code =~ /internal inline fun <R> callWithHandle\(/g;
    my $n = () = $code =~ /\Q$destroyed\E/g;
    fail("closed objects: $objects callWithHandle functions but $n destroyed-object checks") unless $objects > 0 && $n == $objects;
    $code =~ s/\Q$destroyed\E/$shut/g;
    fail("closed objects: an IllegalStateException about a destroyed object remains")
        if $code =~ /IllegalStateException\("[^"]*already been destroyed/;
} elsif ($lang eq 'swift') {
    # 1. Task cancellation reaches Rust. UniFFI 0.32 never calls rust_future_cancel from Swift,
    #    so `Task.cancel()` left the call running until it ended by itself. Each async call now
    #    passes its `ffi_chatsync_rust_future_cancel_*`, and the future is cancelled inside a
    #    task cancellation handler: Rust drops the call's work (its HTTP request too) and the
    #    call completes with CALL_CANCELLED.
    my $calls = () = $code =~ /await uniffiRustCallAsync\(/g;
    my $cancels = ($code =~ s/^([ \t]*)freeFunc: ffi_chatsync_rust_future_free_(\w+),$/$1cancelFunc: { ffi_chatsync_rust_future_cancel_$2(\$0) },\n$1freeFunc: ffi_chatsync_rust_future_free_$2,/mg) || 0;
    fail("async calls: $calls calls but $cancels cancel functions added") unless $calls > 0 && $cancels == $calls;
    replace_once('uniffiRustCallAsync signature', <<'OLD', <<'NEW');
    completeFunc: (UInt64, UnsafeMutablePointer<RustCallStatus>) -> F,
    freeFunc: (UInt64) -> (),
    liftFunc: (F) throws -> T,
OLD
    completeFunc: (UInt64, UnsafeMutablePointer<RustCallStatus>) -> F,
    cancelFunc: @escaping @Sendable (UInt64) -> (),
    freeFunc: (UInt64) -> (),
    liftFunc: (F) throws -> T,
NEW
    replace_once('uniffiRustCallAsync poll loop', <<'OLD', <<'NEW');
    var pollResult: Int8;
    repeat {
        pollResult = await withUnsafeContinuation {
            pollFunc(
                rustFuture,
                { handle, pollResult in
                    uniffiFutureContinuationCallback(handle: handle, pollResult: pollResult)
                },
                uniffiContinuationHandleMap.insert(obj: $0)
            )
        }
    } while pollResult != UNIFFI_RUST_FUTURE_POLL_READY
OLD
    // chatsync (bindings/postprocess.pl): a cancelled Task cancels the Rust future, which then
    // polls ready and completes with CALL_CANCELLED (thrown below as CancellationError). The
    // handler cannot run after this block returns, so it never touches a freed future.
    await withTaskCancellationHandler {
        var pollResult: Int8;
        repeat {
            pollResult = await withUnsafeContinuation {
                pollFunc(
                    rustFuture,
                    { handle, pollResult in
                        uniffiFutureContinuationCallback(handle: handle, pollResult: pollResult)
                    },
                    uniffiContinuationHandleMap.insert(obj: $0)
                )
            }
        } while pollResult != UNIFFI_RUST_FUTURE_POLL_READY
    } onCancel: {
        cancelFunc(rustFuture)
    }
NEW
    # 2. A cancelled call throws CancellationError, as Swift code expects, instead of crashing.
    replace_once('CALL_CANCELLED', <<'OLD', <<'NEW');
        case CALL_CANCELLED:
            fatalError("Cancellation not supported yet")
OLD
        case CALL_CANCELLED:
            throw CancellationError()
NEW
    fail('CALL_CANCELLED: a fatalError about cancellation remains') if $code =~ /Cancellation not supported/;

    # 3. An error's description is its readable text (`message`, defined for both error types
    #    in bindings/swift/ChatsyncExtensions.swift), not a debug dump of the case.
    for my $type ('ChatError', 'TokenProviderError') {
        my $n = ($code =~ s/(\nenum \Q$type\E: Swift\.Error, (?:(?!\n\}\n).)*?public var errorDescription: String\? \{\n\s+)String\(reflecting: self\)/$1self.message/s) || 0;
        fail("$type.errorDescription: the generated `String(reflecting: self)` was not found") unless $n == 1;
    }
} else {
    die "unknown language $lang\n";
}

open my $out, '>', $file or die "$file: $!\n";
print $out $code;
close $out;
print STDERR "bindings/postprocess.pl: $lang bindings adjusted ($file)\n";
