import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;

import org.apache.kafka.common.compress.Compression;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.record.internal.MemoryRecords;
import org.apache.kafka.common.record.internal.MemoryRecordsBuilder;
import org.apache.kafka.common.record.internal.MutableRecordBatch;
import org.apache.kafka.common.record.internal.Record;
import org.apache.kafka.common.record.internal.RecordBatch;

/**
 * Kafka's own record code as the oracle for Gatekeeper's batch rewriting (no broker needed).
 *
 * <pre>
 *   BatchCheck write DIR      one file per codec (DIR/none.bin, gzip.bin, ...), written by
 *                             Kafka's MemoryRecordsBuilder with the Java client's compressors
 *   BatchCheck read FILE...   every batch of each file validated (CRC, sizes) and every record
 *                             read with the Java client's decompressors, printed as JSON lines
 * </pre>
 */
public class BatchCheck {
    private static final String[] CODECS = {"none", "gzip", "snappy", "lz4", "zstd"};

    public static void main(String[] args) throws Exception {
        if (args[0].equals("write")) {
            write(Paths.get(args[1]));
        } else {
            for (int i = 1; i < args.length; i++) {
                read(Paths.get(args[i]));
            }
        }
    }

    private static void write(Path dir) throws Exception {
        for (String name : CODECS) {
            MemoryRecordsBuilder builder = MemoryRecords.builder(
                ByteBuffer.allocate(1 << 20), RecordBatch.CURRENT_MAGIC_VALUE,
                Compression.of(name).build(), TimestampType.CREATE_TIME,
                1000L, RecordBatch.NO_TIMESTAMP, 4242L, (short) 3, 17, true, 7);
            for (int i = 0; i < 50; i++) {
                byte[] key = i % 7 == 3 ? null : ("key-" + i).getBytes(StandardCharsets.UTF_8);
                byte[] value = i % 5 == 4 ? null
                    : ("{\"card\": \"4111 1111 1111 " + i + "\"} ").repeat(20).getBytes(StandardCharsets.UTF_8);
                Header[] headers = i % 3 == 0 ? new Header[0] : new Header[] {
                    new RecordHeader("trace", ("t-" + i).getBytes(StandardCharsets.UTF_8)),
                    new RecordHeader("null", null),
                };
                builder.appendWithOffset(1000L + i, 1_700_000_000_000L + i * 10L, key, value, headers);
            }
            ByteBuffer out = builder.build().buffer();
            byte[] bytes = new byte[out.remaining()];
            out.get(bytes);
            Files.write(dir.resolve(name + ".bin"), bytes);
        }
    }

    private static void read(Path file) throws Exception {
        MemoryRecords records = MemoryRecords.readableRecords(ByteBuffer.wrap(Files.readAllBytes(file)));
        StringBuilder out = new StringBuilder();
        out.append("{\"file\": \"").append(file.getFileName()).append("\"}\n");
        for (MutableRecordBatch batch : records.batches()) {
            batch.ensureValid();
            out.append("{\"batch\": {\"base_offset\": ").append(batch.baseOffset())
                .append(", \"last_offset\": ").append(batch.lastOffset())
                .append(", \"leader_epoch\": ").append(batch.partitionLeaderEpoch())
                .append(", \"codec\": \"").append(batch.compressionType().name).append('"')
                .append(", \"transactional\": ").append(batch.isTransactional())
                .append(", \"control\": ").append(batch.isControlBatch())
                .append(", \"producer_id\": ").append(batch.producerId())
                .append(", \"producer_epoch\": ").append(batch.producerEpoch())
                .append(", \"base_sequence\": ").append(batch.baseSequence())
                .append(", \"max_timestamp\": ").append(batch.maxTimestamp())
                .append(", \"count\": ").append(batch.countOrNull())
                .append("}}\n");
            for (Record record : batch) {
                record.ensureValid();
                out.append("{\"offset\": ").append(record.offset())
                    .append(", \"timestamp\": ").append(record.timestamp())
                    .append(", \"key\": ").append(hex(record.key()))
                    .append(", \"value\": ").append(hex(record.value()))
                    .append(", \"headers\": [");
                Header[] headers = record.headers();
                for (int i = 0; i < headers.length; i++) {
                    out.append(i == 0 ? "" : ", ").append("[\"").append(headers[i].key()).append("\", ")
                        .append(hex(headers[i].value() == null ? null : ByteBuffer.wrap(headers[i].value())))
                        .append(']');
                }
                out.append("]}\n");
            }
        }
        System.out.print(out);
        System.out.flush();
    }

    private static String hex(ByteBuffer buffer) {
        if (buffer == null) {
            return "null";
        }
        StringBuilder sb = new StringBuilder("\"");
        ByteBuffer b = buffer.duplicate();
        while (b.hasRemaining()) {
            sb.append(String.format("%02x", b.get() & 0xff));
        }
        return sb.append('"').toString();
    }
}
