/*
 * Drives Kafka's own Java consumer with the new group protocol (group.protocol=consumer,
 * KIP-848) and prints what it saw as one JSON line on stdout:
 *
 *   java -cp <kafka jars>:<classes> ConsumerGroupProbe <bootstrap> <mode> <group> <seconds> <expect> <arg>
 *
 * Modes:
 *   names <t1,t2>     subscribe(List) to the topics
 *   pattern <regex>   subscribe(SubscriptionPattern): the broker-side (server-side) regex
 *   client <regex>    subscribe(java.util.regex.Pattern): matched by the client on its metadata
 *   rebalance <topic> two members in one group: a joins, b joins (they share the partitions),
 *                     a leaves (b takes everything); both commit what they consume
 *
 * It polls until <expect> records have come or <seconds> have passed, commits synchronously
 * (the commit goes through OffsetCommit v10, by topic id), reads the committed offsets back
 * (OffsetFetch v10) and prints: records (per topic), committed (topic-partition -> offset),
 * error (simple class name of the first exception a poll or commit threw, null if none),
 * message, polls, phases (rebalance: the assignment each member had at each phase).
 */

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Pattern;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.SubscriptionPattern;
import org.apache.kafka.common.TopicPartition;

public final class ConsumerGroupProbe {

    final String bootstrap;
    final String group;
    final long deadline;
    final int expect;
    final Map<String, Integer> records = new TreeMap<>();
    final Map<String, Long> committed = new TreeMap<>();
    final List<String> phases = new ArrayList<>();
    String error;
    String message;
    int polls;

    ConsumerGroupProbe(String bootstrap, String group, double seconds, int expect) {
        this.bootstrap = bootstrap;
        this.group = group;
        this.deadline = System.currentTimeMillis() + Math.round(seconds * 1000);
        this.expect = expect;
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 6) {
            System.err.println("usage: ConsumerGroupProbe <bootstrap> <mode> <group> <seconds> <expect> <arg>");
            System.exit(2);
        }
        ConsumerGroupProbe probe = new ConsumerGroupProbe(args[0], args[2], Double.parseDouble(args[3]), Integer.parseInt(args[4]));
        try {
            if (args[1].equals("rebalance")) {
                probe.rebalance(args[5]);
            } else {
                probe.consume(args[1], args[5]);
            }
        } catch (Throwable t) {
            probe.fail(t);
        }
        probe.print();
        System.exit(0);
    }

    KafkaConsumer<byte[], byte[]> consumer(String clientId) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("group.id", group);
        p.put("group.protocol", "consumer");
        p.put("client.id", clientId);
        p.put("auto.offset.reset", "earliest");
        p.put("enable.auto.commit", "false");
        p.put("metadata.max.age.ms", "2000");
        p.put("key.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer");
        p.put("value.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer");
        return new KafkaConsumer<>(p);
    }

    void consume(String mode, String arg) {
        KafkaConsumer<byte[], byte[]> c = consumer("probe-" + mode);
        try {
            switch (mode) {
                case "names" -> c.subscribe(List.of(arg.split(",")));
                case "pattern" -> c.subscribe(new SubscriptionPattern(arg));
                case "client" -> c.subscribe(Pattern.compile(arg));
                default -> throw new IllegalArgumentException("unknown mode " + mode);
            }
            while (System.currentTimeMillis() < deadline && total() < expect) {
                try {
                    take(c.poll(Duration.ofMillis(200)));
                } catch (RuntimeException e) {
                    fail(e);
                    sleep(200);
                }
            }
            commitAndRead(c);
        } finally {
            c.close(Duration.ofSeconds(5));
        }
    }

    void rebalance(String topic) {
        KafkaConsumer<byte[], byte[]> a = consumer("member-a");
        KafkaConsumer<byte[], byte[]> b = consumer("member-b");
        Set<TopicPartition> all = new HashSet<>();
        try {
            a.subscribe(List.of(topic));
            pollUntil(List.of(a), () -> !a.assignment().isEmpty());
            all.addAll(a.assignment());
            phases.add("a=" + names(a.assignment()));
            b.subscribe(List.of(topic));
            pollUntil(List.of(a, b), () -> !a.assignment().isEmpty() && !b.assignment().isEmpty());
            phases.add("a=" + names(a.assignment()) + " b=" + names(b.assignment()));
            pollUntil(List.of(a, b), () -> total() >= expect / 2);
            a.commitSync(Duration.ofSeconds(10));
            a.close(Duration.ofSeconds(5));
            pollUntil(List.of(b), () -> b.assignment().size() == all.size() && total() >= expect);
            phases.add("b=" + names(b.assignment()));
            commitAndRead(b);
        } finally {
            b.close(Duration.ofSeconds(5));
        }
    }

    interface Cond {
        boolean ok();
    }

    void pollUntil(List<KafkaConsumer<byte[], byte[]>> members, Cond cond) {
        while (System.currentTimeMillis() < deadline && !cond.ok()) {
            for (KafkaConsumer<byte[], byte[]> m : members) {
                try {
                    take(m.poll(Duration.ofMillis(100)));
                } catch (RuntimeException e) {
                    fail(e);
                }
            }
        }
    }

    void take(ConsumerRecords<byte[], byte[]> batch) {
        polls++;
        for (ConsumerRecord<byte[], byte[]> r : batch) {
            records.merge(r.topic(), 1, Integer::sum);
        }
    }

    void commitAndRead(KafkaConsumer<byte[], byte[]> c) {
        Set<TopicPartition> assigned = c.assignment();
        if (assigned.isEmpty()) {
            return;
        }
        try {
            c.commitSync(Duration.ofSeconds(10));
            for (Map.Entry<TopicPartition, OffsetAndMetadata> e : c.committed(assigned, Duration.ofSeconds(10)).entrySet()) {
                committed.put(e.getKey().toString(), e.getValue() == null ? -1L : e.getValue().offset());
            }
        } catch (RuntimeException e) {
            fail(e);
        }
    }

    static String names(Set<TopicPartition> tps) {
        Set<String> out = new TreeSet<>();
        for (TopicPartition tp : tps) {
            out.add(tp.toString());
        }
        return String.join(",", out);
    }

    int total() {
        int n = 0;
        for (int v : records.values()) {
            n += v;
        }
        return n;
    }

    void fail(Throwable t) {
        Throwable inner = t;
        while (inner.getCause() != null && !(inner instanceof org.apache.kafka.common.errors.ApiException)) {
            inner = inner.getCause();
        }
        if (error == null) {
            error = inner.getClass().getSimpleName();
            message = String.valueOf(inner.getMessage());
        }
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    void print() {
        StringBuilder sb = new StringBuilder("{\"records\": {");
        String sep = "";
        for (Map.Entry<String, Integer> e : records.entrySet()) {
            sb.append(sep).append(q(e.getKey())).append(": ").append(e.getValue());
            sep = ", ";
        }
        sb.append("}, \"committed\": {");
        sep = "";
        for (Map.Entry<String, Long> e : committed.entrySet()) {
            sb.append(sep).append(q(e.getKey())).append(": ").append(e.getValue());
            sep = ", ";
        }
        sb.append("}, \"phases\": [");
        sep = "";
        for (String p : phases) {
            sb.append(sep).append(q(p));
            sep = ", ";
        }
        sb.append("], \"error\": ").append(error == null ? "null" : q(error));
        sb.append(", \"message\": ").append(message == null ? "null" : q(message));
        sb.append(", \"polls\": ").append(polls).append("}");
        System.out.println(sb);
        System.out.flush();
    }

    static String q(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (char ch : s.toCharArray()) {
            if (ch == '"' || ch == '\\') {
                sb.append('\\').append(ch);
            } else if (ch < 0x20) {
                sb.append(String.format("\\u%04x", (int) ch));
            } else {
                sb.append(ch);
            }
        }
        return sb.append('"').toString();
    }
}
