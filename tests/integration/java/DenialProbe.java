/*
 * Drives Kafka's own Java client through one "denial cell" and prints what the client surfaced
 * as one JSON line on stdout:
 *
 *   java -cp <kafka jars>:<classes> DenialProbe <bootstrap> <cell> <seconds> [key=value ...]
 *
 * Trailing key=value arguments are client properties (SASL settings, say) applied to every
 * client the probe creates, after its own. The probe always prints its line and exits 0 once
 * its arguments are valid, whatever the client throws; bad arguments exit 2.
 *
 * Fields: cell, error (simple class name of the innermost Kafka ApiException, or of the
 * unwrapped exception when there is none; null when nothing failed), message, records,
 * detail (free text: counters such as polls and the client's own request-total metric, so a
 * client that spins shows it), elapsed_ms (probe start to the printed line).
 */

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.DeleteRecordsOptions;
import org.apache.kafka.clients.admin.DeleteTopicsOptions;
import org.apache.kafka.clients.admin.DescribeTopicsOptions;
import org.apache.kafka.clients.admin.AlterConfigsOptions;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.CloseOptions;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.ApiException;

public final class DenialProbe {

    static final String DENIED_TOPIC = "denied.t";
    static final String HIDDEN_TOPIC = "hidden.t";
    static final String ALLOWED_TOPIC = "allowed.t";
    static final List<String> CELLS = List.of(
            "produce-acks1", "produce-acksall", "produce-acks0", "consume-subscribe",
            "consume-mixed", "consume-assign", "metadata-topic", "list-topics", "join-group",
            "commit-offsets", "offset-fetch", "create-topic", "delete-topic", "alter-config",
            "transactional", "idempotent", "delete-records");
    static final Set<String> CLIENT_METRIC_GROUPS =
            Set.of("producer-metrics", "consumer-metrics", "admin-client-metrics");
    static final Duration CLOSE_TIMEOUT = Duration.ofSeconds(2);

    static final AtomicBoolean PRINTED = new AtomicBoolean();

    final String bootstrap;
    final String cell;
    final long windowMs;
    final Map<String, String> extra;
    final long startNanos = System.nanoTime();

    // What gets printed.
    volatile String error;
    String message;
    long records;
    final Map<String, Object> detail = new LinkedHashMap<>();

    DenialProbe(String bootstrap, String cell, long windowMs, Map<String, String> extra) {
        this.bootstrap = bootstrap;
        this.cell = cell;
        this.windowMs = windowMs;
        this.extra = extra;
    }

    public static void main(String[] args) {
        if (args.length < 3) {
            usage("expected <bootstrap> <cell> <seconds> [key=value ...]");
        }
        if (!CELLS.contains(args[1])) {
            usage("unknown cell " + args[1] + "; one of " + String.join(", ", CELLS));
        }
        double seconds = 0;
        try {
            seconds = Double.parseDouble(args[2]);
        } catch (NumberFormatException e) {
            usage("seconds must be a number, got " + args[2]);
        }
        if (!(seconds > 0) || Double.isInfinite(seconds)) {
            usage("seconds must be positive, got " + args[2]);
        }
        Map<String, String> extra = new LinkedHashMap<>();
        for (int i = 3; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq <= 0) {
                usage("client property must be key=value, got " + args[i]);
            }
            extra.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        DenialProbe probe = new DenialProbe(args[0], args[1], Math.round(seconds * 1000), extra);
        probe.startWatchdog();
        try {
            probe.run();
        } catch (Throwable t) {
            probe.fail(t);
        }
        probe.emit();
        System.exit(0);
    }

    static void usage(String problem) {
        System.err.println("DenialProbe: " + problem);
        System.err.println("usage: DenialProbe <bootstrap> <cell> <seconds> [key=value ...]");
        System.exit(2);
    }

    /** If a client call outlives every timeout we gave it, still print a line and leave. */
    void startWatchdog() {
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(2 * windowMs + 30_000);
            } catch (InterruptedException e) {
                return;
            }
            String first = error;
            print("ProbeHung", "a client call outlived its timeouts",
                    first == null ? null : "first error before hanging=" + first);
            Runtime.getRuntime().halt(0);
        }, "probe-watchdog");
        watchdog.setDaemon(true);
        watchdog.start();
    }

    void run() throws Exception {
        switch (cell) {
            case "produce-acks1" -> produceAcked("1");
            case "produce-acksall" -> produceAcked("all");
            case "produce-acks0" -> produceAcks0();
            case "consume-subscribe" -> consumeLoop("probe-group-1", List.of(DENIED_TOPIC));
            case "consume-mixed" -> consumeLoop("probe-group-2", List.of(ALLOWED_TOPIC, DENIED_TOPIC));
            case "consume-assign" -> consumeAssign();
            case "join-group" -> consumeLoop("denied-group", List.of(ALLOWED_TOPIC));
            case "commit-offsets" -> commitOffsets();
            case "offset-fetch" -> offsetFetch();
            case "transactional" -> transactional();
            case "idempotent" -> idempotent();
            default -> adminCell();
        }
    }

    // ---- producers --------------------------------------------------------------------------

    long deliveryTimeoutMs() {
        return Math.max(5000, windowMs);
    }

    Properties producerProps(String clientId) {
        Properties p = base(clientId);
        long delivery = deliveryTimeoutMs();
        p.put("key.serializer", "org.apache.kafka.common.serialization.ByteArraySerializer");
        p.put("value.serializer", "org.apache.kafka.common.serialization.ByteArraySerializer");
        p.put("linger.ms", "0");
        p.put("delivery.timeout.ms", Long.toString(delivery));
        p.put("request.timeout.ms", Long.toString(delivery / 2));
        p.put("max.block.ms", Long.toString(windowMs));
        return p;
    }

    void produceAcked(String acks) throws Exception {
        Properties p = producerProps(clientId());
        p.put("acks", acks);
        sendOneAndWait(p, DENIED_TOPIC);
    }

    void idempotent() throws Exception {
        Properties p = producerProps("deny-idempotent");
        p.put("acks", "all");
        p.put("enable.idempotence", "true");
        sendOneAndWait(p, ALLOWED_TOPIC);
    }

    void sendOneAndWait(Properties props, String topic) throws Exception {
        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props);
        try {
            Future<RecordMetadata> future = producer.send(record(topic, 0));
            try {
                RecordMetadata md = future.get(deliveryTimeoutMs() + 2000, TimeUnit.MILLISECONDS);
                detail.put("written", md.topic() + "-" + md.partition() + "@" + md.offset());
            } catch (Exception e) {
                fail(e);
            }
        } finally {
            producerMetrics(producer);
            close(producer);
        }
    }

    void produceAcks0() throws Exception {
        Properties p = producerProps(clientId());
        p.put("acks", "0");
        // Three sends may each wait for metadata: share the window between them.
        p.put("max.block.ms", Long.toString(Math.max(1000, windowMs / 3)));
        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p);
        try {
            List<Future<RecordMetadata>> futures = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                try {
                    futures.add(producer.send(record(DENIED_TOPIC, i)));
                } catch (Exception e) {
                    fail(e);
                    futures.add(null);
                }
            }
            producer.flush();
            sleepUntil(deadline());
            List<String> outcomes = new ArrayList<>();
            for (Future<RecordMetadata> future : futures) {
                outcomes.add(outcome(future));
            }
            detail.put("sends", String.join(",", outcomes));
        } finally {
            producerMetrics(producer);
            close(producer);
        }
    }

    /** A send's outcome without waiting: offset, exception class name, or pending. */
    String outcome(Future<RecordMetadata> future) {
        if (future == null) {
            return "threw";
        }
        if (!future.isDone()) {
            return "pending";
        }
        try {
            RecordMetadata md = future.get();
            return "ok:" + md.partition() + "@" + md.offset();
        } catch (Exception e) {
            fail(e);
            return innermost(e).getClass().getSimpleName();
        }
    }

    void transactional() {
        Properties p = producerProps(clientId());
        p.put("transactional.id", "denied-txn");
        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p);
        try {
            producer.initTransactions();
            detail.put("initTransactions", "ok");
        } catch (Exception e) {
            fail(e);
        } finally {
            producerMetrics(producer);
            close(producer);
        }
    }

    static ProducerRecord<byte[], byte[]> record(String topic, int i) {
        return new ProducerRecord<>(topic, ("probe-key-" + i).getBytes(), ("probe-value-" + i).getBytes());
    }

    void producerMetrics(KafkaProducer<?, ?> producer) {
        clientMetrics(producer.metrics());
        for (Map.Entry<MetricName, ? extends Metric> e : producer.metrics().entrySet()) {
            MetricName n = e.getKey();
            if (n.group().equals("producer-metrics")
                    && (n.name().equals("record-error-total") || n.name().equals("record-retry-total"))) {
                detail.put(n.name().equals("record-error-total") ? "record_errors" : "record_retries",
                        asLong(e.getValue()));
            }
        }
    }

    // ---- consumers --------------------------------------------------------------------------

    Properties consumerProps(String groupId) {
        Properties p = base(clientId());
        p.put("key.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer");
        p.put("value.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer");
        p.put("default.api.timeout.ms", Long.toString(windowMs));
        p.put("request.timeout.ms", Long.toString(Math.max(1000, windowMs / 2)));
        if (groupId != null) {
            p.put("group.id", groupId);
        }
        return p;
    }

    void consumeLoop(String groupId, List<String> topics) {
        Properties p = consumerProps(groupId);
        p.put("auto.offset.reset", "earliest");
        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p);
        try {
            consumer.subscribe(topics);
            pollUntilDeadline(consumer);
        } finally {
            clientMetrics(consumer.metrics());
            close(consumer);
        }
    }

    void consumeAssign() {
        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(consumerProps(null));
        try {
            TopicPartition tp = new TopicPartition(DENIED_TOPIC, 0);
            consumer.assign(List.of(tp));
            consumer.seekToBeginning(List.of(tp));
            pollUntilDeadline(consumer);
        } finally {
            clientMetrics(consumer.metrics());
            close(consumer);
        }
    }

    /** Poll for the whole window as an application would, carrying on after exceptions. */
    void pollUntilDeadline(KafkaConsumer<byte[], byte[]> consumer) {
        long deadline = deadline();
        long polls = 0;
        long exceptions = 0;
        Map<String, Long> perTopic = new TreeMap<>();
        Set<String> kinds = new TreeSet<>();
        long remaining;
        while ((remaining = deadline - System.nanoTime()) > 0) {
            polls++;
            try {
                ConsumerRecords<byte[], byte[]> batch =
                        consumer.poll(Duration.ofNanos(Math.min(remaining, 1_000_000_000L)));
                for (ConsumerRecord<byte[], byte[]> r : batch) {
                    records++;
                    perTopic.merge(r.topic(), 1L, Long::sum);
                }
            } catch (Exception e) {
                exceptions++;
                kinds.add(innermost(e).getClass().getSimpleName());
                fail(e);
            }
        }
        detail.put("polls", polls);
        detail.put("exceptions", exceptions);
        if (!kinds.isEmpty()) {
            detail.put("exception_kinds", String.join(",", kinds));
        }
        if (!perTopic.isEmpty()) {
            detail.put("records_by_topic", perTopic.toString());
        }
    }

    void commitOffsets() {
        Properties p = consumerProps("denied-commit");
        p.put("enable.auto.commit", "false");
        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p);
        try {
            TopicPartition tp = new TopicPartition(ALLOWED_TOPIC, 0);
            consumer.assign(List.of(tp));
            consumer.commitSync(Map.of(tp, new OffsetAndMetadata(1)), Duration.ofMillis(windowMs));
            detail.put("commitSync", "ok");
        } catch (Exception e) {
            fail(e);
        } finally {
            clientMetrics(consumer.metrics());
            close(consumer);
        }
    }

    void offsetFetch() {
        Properties p = consumerProps("denied-fetch");
        p.put("enable.auto.commit", "false");
        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p);
        try {
            TopicPartition tp = new TopicPartition(ALLOWED_TOPIC, 0);
            consumer.assign(List.of(tp));
            Map<TopicPartition, OffsetAndMetadata> committed =
                    consumer.committed(Set.of(tp), Duration.ofMillis(windowMs));
            detail.put("committed", String.valueOf(committed));
        } catch (Exception e) {
            fail(e);
        } finally {
            clientMetrics(consumer.metrics());
            close(consumer);
        }
    }

    // ---- admin ------------------------------------------------------------------------------

    void adminCell() {
        Properties p = base(clientId());
        p.put("default.api.timeout.ms", Long.toString(Math.max(1000, windowMs)));
        p.put("request.timeout.ms", Long.toString(Math.max(1000, windowMs / 2)));
        Admin admin = Admin.create(p);
        int timeout = (int) Math.min(Integer.MAX_VALUE, windowMs);
        long waitMs = windowMs + 2000;
        TopicPartition deniedTp = new TopicPartition(DENIED_TOPIC, 0);
        try {
            switch (cell) {
                case "metadata-topic" -> {
                    Map<String, TopicDescription> found = admin
                            .describeTopics(List.of(HIDDEN_TOPIC), new DescribeTopicsOptions().timeoutMs(timeout))
                            .allTopicNames().get(waitMs, TimeUnit.MILLISECONDS);
                    detail.put("described", String.join(",", new TreeSet<>(found.keySet())));
                }
                case "list-topics" -> {
                    Set<String> names = admin.listTopics(new ListTopicsOptions().timeoutMs(timeout))
                            .names().get(waitMs, TimeUnit.MILLISECONDS);
                    detail.put("topics", String.join(",", new TreeSet<>(names)));
                }
                case "create-topic" -> admin
                        .createTopics(List.of(new NewTopic("denied.created", 1, (short) 1)),
                                new CreateTopicsOptions().timeoutMs(timeout))
                        .all().get(waitMs, TimeUnit.MILLISECONDS);
                case "delete-topic" -> admin
                        .deleteTopics(List.of(DENIED_TOPIC), new DeleteTopicsOptions().timeoutMs(timeout))
                        .all().get(waitMs, TimeUnit.MILLISECONDS);
                case "alter-config" -> {
                    ConfigResource topic = new ConfigResource(ConfigResource.Type.TOPIC, DENIED_TOPIC);
                    AlterConfigOp op = new AlterConfigOp(
                            new ConfigEntry("retention.ms", "1000"), AlterConfigOp.OpType.SET);
                    admin.incrementalAlterConfigs(Map.of(topic, List.of(op)),
                                    new AlterConfigsOptions().timeoutMs(timeout))
                            .all().get(waitMs, TimeUnit.MILLISECONDS);
                }
                case "delete-records" -> admin
                        .deleteRecords(Map.of(deniedTp, RecordsToDelete.beforeOffset(0)),
                                new DeleteRecordsOptions().timeoutMs(timeout))
                        .all().get(waitMs, TimeUnit.MILLISECONDS);
                default -> throw new IllegalStateException("no admin cell " + cell);
            }
        } catch (Exception e) {
            fail(e);
        } finally {
            clientMetrics(admin.metrics());
            try {
                admin.close(CLOSE_TIMEOUT);
            } catch (Exception e) {
                detail.put("close", innermost(e).getClass().getSimpleName());
            }
        }
    }

    // ---- shared -----------------------------------------------------------------------------

    String clientId() {
        return "probe-" + cell;
    }

    Properties base(String clientId) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("client.id", clientId);
        p.putAll(extra);
        return p;
    }

    long deadline() {
        return startNanos + windowMs * 1_000_000L;
    }

    static void sleepUntil(long deadlineNanos) throws InterruptedException {
        long remaining;
        while ((remaining = deadlineNanos - System.nanoTime()) > 0) {
            TimeUnit.NANOSECONDS.sleep(remaining);
        }
    }

    void close(KafkaProducer<?, ?> producer) {
        try {
            producer.close(CLOSE_TIMEOUT);
        } catch (Exception e) {
            detail.put("close", innermost(e).getClass().getSimpleName());
        }
    }

    void close(KafkaConsumer<?, ?> consumer) {
        try {
            consumer.close(CloseOptions.timeout(CLOSE_TIMEOUT));
        } catch (Exception e) {
            detail.put("close", innermost(e).getClass().getSimpleName());
        }
    }

    /** The client's own request and connection counters, read before it is closed. */
    void clientMetrics(Map<MetricName, ? extends Metric> metrics) {
        for (Map.Entry<MetricName, ? extends Metric> e : metrics.entrySet()) {
            MetricName n = e.getKey();
            if (!CLIENT_METRIC_GROUPS.contains(n.group())) {
                continue;
            }
            if (n.name().equals("request-total")) {
                detail.put("requests", asLong(e.getValue()));
            } else if (n.name().equals("connection-creation-total")) {
                detail.put("connections", asLong(e.getValue()));
            }
        }
    }

    static long asLong(Metric metric) {
        Object value = metric.metricValue();
        return value instanceof Number number ? Math.round(number.doubleValue()) : -1;
    }

    /** Record the first failure; later ones only count where the cell counts them. */
    void fail(Throwable t) {
        if (error != null) {
            return;
        }
        Throwable inner = innermost(t);
        error = inner.getClass().getSimpleName();
        message = inner.getMessage();
        List<String> chain = chain(t);
        if (chain.size() > 1) {
            detail.put("chain", String.join(">", chain));
        }
    }

    /** The innermost Kafka ApiException in the cause chain, else the unwrapped exception. */
    static Throwable innermost(Throwable t) {
        Throwable found = null;
        Set<Throwable> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        for (Throwable cur = t; cur != null && seen.add(cur); cur = cur.getCause()) {
            if (cur instanceof ApiException) {
                found = cur;
            }
        }
        if (found != null) {
            return found;
        }
        Throwable cur = t;
        while (cur.getCause() != null && cur.getCause() != cur
                && (cur instanceof ExecutionException || cur instanceof CompletionException
                    || cur.getClass() == KafkaException.class)) {
            cur = cur.getCause();
        }
        return cur;
    }

    static List<String> chain(Throwable t) {
        List<String> names = new ArrayList<>();
        Set<Throwable> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        for (Throwable cur = t; cur != null && seen.add(cur); cur = cur.getCause()) {
            names.add(cur.getClass().getSimpleName());
        }
        return names;
    }

    // ---- output -----------------------------------------------------------------------------

    void emit() {
        StringBuilder details = new StringBuilder();
        for (Map.Entry<String, Object> e : detail.entrySet()) {
            if (details.length() > 0) {
                details.append("; ");
            }
            details.append(e.getKey()).append('=').append(e.getValue());
        }
        print(error, message, details.length() == 0 ? null : details.toString());
    }

    /** Print the one JSON line; whichever of main and the watchdog comes first wins. */
    void print(String error, String message, String details) {
        if (!PRINTED.compareAndSet(false, true)) {
            return;
        }
        long elapsedMs = (System.nanoTime() - startNanos) / 1_000_000L;
        StringBuilder out = new StringBuilder("{");
        out.append("\"cell\":").append(json(cell));
        out.append(",\"error\":").append(json(error));
        out.append(",\"message\":").append(json(message));
        out.append(",\"records\":").append(records);
        out.append(",\"detail\":").append(json(details));
        out.append(",\"elapsed_ms\":").append(elapsedMs);
        out.append('}');
        System.out.println(out);
        System.out.flush();
    }

    /** A JSON string literal (ASCII only: everything else as \\u escapes), or null. */
    static String json(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder(s.length() + 2).append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                case '\b' -> b.append("\\b");
                case '\f' -> b.append("\\f");
                default -> {
                    if (c < 0x20 || c > 0x7e) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }
}
