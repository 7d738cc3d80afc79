// The Kotlin driver of chatsync-bench's FFI scenario (issue 8, scenario 8): opens a store the
// bench prepared, through the generated UniFFI bindings (dev.chatsync, JNA), checks the first
// page is the right one, then times `ChatClient.messages(room, 50, null)` in batches and prints
// the per-call microseconds of each batch as one JSON line, which the bench reads.
//
// Arguments: DATA_DIR ROOM_ID NEWEST_ID WARMUP_CALLS BATCHES CALLS_PER_BATCH
// Exits non-zero (an exception) when the page read back is not the expected one.

import dev.chatsync.*

/** The text the bench gave message `id` (bench/src/data.rs, `text_of`). */
fun textOf(id: Long): String = "message ${"%09d".format(id)}: see you at the station at half past, ok?"

fun main(args: Array<String>) {
    require(args.size == 6) { "DATA_DIR ROOM_ID NEWEST_ID WARMUP_CALLS BATCHES CALLS_PER_BATCH" }
    val dataDir = args[0]
    val room = args[1]
    val newest = args[2].toLong()
    val warmup = args[3].toInt()
    val batches = args[4].toInt()
    val perBatch = args[5].toInt()

    val config = ClientConfig(
        serverUrl = "http://127.0.0.1:9", // never contacted: reading the store is offline
        dataDir = dataDir,
        userId = "alice",
        token = TokenSource.Fixed("unused"),
    )
    val client = ChatClient(config)
    try {
        val page = client.messages(room, 50u, null)
        check(page.size == 50) { "expected 50 messages, read ${page.size}" }
        var expected = newest
        for (m in page) {
            check(m.serverId == expected.toULong()) { "expected message $expected, read ${m.serverId}" }
            check(m.text == textOf(expected)) { "message $expected has the wrong text: ${m.text}" }
            expected--
        }
        var sink = 0L
        repeat(warmup) { sink += client.messages(room, 50u, null).size }
        val perCall = DoubleArray(batches)
        for (b in 0 until batches) {
            val t = System.nanoTime()
            repeat(perBatch) { sink += client.messages(room, 50u, null).size }
            perCall[b] = (System.nanoTime() - t) / 1000.0 / perBatch
        }
        check(sink == 50L * (warmup + batches.toLong() * perBatch)) { "a page was short" }
        println("{\"per_call_us\": [${perCall.joinToString(",")}]}")
    } finally {
        client.shutdown()
        client.close()
    }
}
