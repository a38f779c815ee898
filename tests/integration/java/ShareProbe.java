// Share groups (KIP-932) through Gatekeeper with Kafka's own Java clients; prints one JSON line.
//
//   consume <bootstrap> <group> <topic> <seconds> <idle-seconds> [key=value ...]
//       A KafkaShareConsumer (explicit acknowledgement) subscribed to <topic>: every record is
//       acknowledged ACCEPT and committed; stops after <seconds>, or after <idle-seconds> with
//       nothing new once something arrived. Prints the values received, the errors poll()
//       threw (class and message) and the number of polls.
//   offsets <bootstrap> <group> <topic> [key=value ...]
//       Admin: listShareGroupOffsets, alterShareGroupOffsets (partition 0 to offset 0),
//       deleteShareGroupOffsets on <topic>; prints each step's outcome (ok or the error class).

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ListShareGroupOffsetsSpec;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

public class ShareProbe {
    public static void main(String[] args) throws Exception {
        String mode = args[0];
        String bootstrap = args[1];
        String group = args[2];
        String topic = args[3];
        if (mode.equals("consume")) {
            consume(bootstrap, group, topic, Double.parseDouble(args[4]), Double.parseDouble(args[5]), extra(args, 6));
        } else if (mode.equals("offsets")) {
            offsets(bootstrap, group, topic, extra(args, 4));
        } else {
            throw new IllegalArgumentException("unknown mode " + mode);
        }
    }

    static Properties extra(String[] args, int from) {
        Properties p = new Properties();
        for (int i = from; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            p.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        return p;
    }

    static String q(String s) {
        if (s == null) return "null";
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }

    static String list(List<String> items) {
        StringBuilder b = new StringBuilder("[");
        for (int i = 0; i < items.size(); i++) b.append(i == 0 ? "" : ",").append(q(items.get(i)));
        return b.append(']').toString();
    }

    static void consume(String bootstrap, String group, String topic, double seconds, double idle, Properties extra) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("group.id", group);
        p.put("key.deserializer", StringDeserializer.class.getName());
        p.put("value.deserializer", StringDeserializer.class.getName());
        p.put("share.acknowledgement.mode", "explicit");
        p.putAll(extra);
        List<String> values = new ArrayList<>();
        List<String> errors = new ArrayList<>();
        int polls = 0;
        long start = System.nanoTime();
        long lastRecord = 0;
        try (KafkaShareConsumer<String, String> consumer = new KafkaShareConsumer<>(p)) {
            consumer.subscribe(Set.of(topic));
            while (true) {
                long now = System.nanoTime();
                if (now - start > (long) (seconds * 1e9)) break;
                if (lastRecord != 0 && now - lastRecord > (long) (idle * 1e9)) break;
                polls++;
                try {
                    ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(500));
                    for (ConsumerRecord<String, String> r : records) {
                        values.add(r.value());
                        consumer.acknowledge(r, AcknowledgeType.ACCEPT);
                        lastRecord = System.nanoTime();
                    }
                    if (!records.isEmpty()) consumer.commitSync(Duration.ofSeconds(10));
                } catch (Exception e) {
                    errors.add(e.getClass().getSimpleName() + ": " + e.getMessage());
                }
            }
        }
        System.out.println("{\"values\":" + list(values) + ",\"errors\":" + list(errors) + ",\"polls\":" + polls + "}");
    }

    static void offsets(String bootstrap, String group, String topic, Properties extra) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.putAll(extra);
        List<String> steps = new ArrayList<>();
        TopicPartition tp = new TopicPartition(topic, 0);
        try (Admin admin = Admin.create(p)) {
            try {
                Map<TopicPartition, ?> listed = admin.listShareGroupOffsets(
                        Map.of(group, new ListShareGroupOffsetsSpec().topicPartitions(List.of(tp))))
                    .partitionsToOffsetInfo(group).get();
                steps.add("list:ok:" + listed.keySet().size());
            } catch (Exception e) {
                steps.add("list:" + cause(e));
            }
            try {
                admin.alterShareGroupOffsets(group, Map.of(tp, 0L)).all().get();
                steps.add("alter:ok");
            } catch (Exception e) {
                steps.add("alter:" + cause(e));
            }
            try {
                admin.deleteShareGroupOffsets(group, Set.of(topic)).all().get();
                steps.add("delete:ok");
            } catch (Exception e) {
                steps.add("delete:" + cause(e));
            }
        }
        System.out.println("{\"steps\":" + list(steps) + "}");
    }

    static String cause(Throwable e) {
        Throwable c = e.getCause() != null ? e.getCause() : e;
        return c.getClass().getSimpleName();
    }
}
