import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.pulsar.client.api.AuthenticationFactory;
import org.apache.pulsar.client.api.CompressionType;
import org.apache.pulsar.client.api.Consumer;
import org.apache.pulsar.client.api.Message;
import org.apache.pulsar.client.api.MessageId;
import org.apache.pulsar.client.api.Producer;
import org.apache.pulsar.client.api.PulsarClient;
import org.apache.pulsar.client.api.SubscriptionInitialPosition;

/**
 * Pulsar's own Java client through Gatekeeper, for the Pulsar mask tests. One line per result
 * on stdout, fields separated by spaces, bytes in base64.
 *
 * produce URL TOKEN TOPIC_PREFIX: for each compression and batched/unbatched, sends 4 JSON
 *   messages (keys k0..k3) to TOPIC_PREFIX-compression-b|u, then one that is not JSON (which
 *   Gatekeeper refuses), then one more JSON message. Prints "topic TOPIC REFUSED_CLASS MESSAGE_B64".
 * consume URL TOKEN TOPIC N: reads N messages from the start. Prints "value KEY VALUE_B64" each.
 */
public final class PulsarMaskProbe {
    private static final String[] COMPRESSIONS = {"NONE", "LZ4", "ZLIB", "ZSTD", "SNAPPY"};

    public static void main(String[] args) throws Exception {
        String mode = args[0];
        try (PulsarClient client = PulsarClient.builder().serviceUrl(args[1])
                .authentication(AuthenticationFactory.token(args[2]))
                .operationTimeout(10, TimeUnit.SECONDS).connectionTimeout(5, TimeUnit.SECONDS).build()) {
            if (mode.equals("produce")) {
                produce(client, args[3]);
            } else {
                consume(client, args[3], Integer.parseInt(args[4]));
            }
        }
    }

    private static void produce(PulsarClient client, String prefix) throws Exception {
        for (String compression : COMPRESSIONS) {
            for (boolean batched : new boolean[] {true, false}) {
                String topic = prefix + "-" + compression.toLowerCase() + "-" + (batched ? "b" : "u");
                try (Producer<byte[]> producer = client.newProducer().topic(topic)
                        .compressionType(CompressionType.valueOf(compression))
                        .enableBatching(batched).batchingMaxMessages(10)
                        .batchingMaxPublishDelay(50, TimeUnit.MILLISECONDS)
                        .sendTimeout(8, TimeUnit.SECONDS).create()) {
                    List<CompletableFuture<MessageId>> sent = new ArrayList<>();
                    for (int i = 0; i < 4; i++) {
                        String doc = "{\"card\": \"4111111111111111\", \"n\": " + i + "}";
                        sent.add(producer.newMessage().key("k" + i).property("trace", "t" + i)
                                .value(doc.getBytes(StandardCharsets.UTF_8)).sendAsync());
                    }
                    producer.flush();
                    for (CompletableFuture<MessageId> f : sent) {
                        f.get(10, TimeUnit.SECONDS);
                    }
                    String refused = "none";
                    String message = "";
                    long began = System.nanoTime();
                    try {
                        producer.newMessage().key("bad").value("card 4111111111111111, not JSON".getBytes(StandardCharsets.UTF_8)).send();
                    } catch (Exception e) {
                        refused = e.getClass().getSimpleName();
                        message = String.valueOf(e.getMessage());
                    }
                    long millis = (System.nanoTime() - began) / 1_000_000;
                    producer.newMessage().key("k4").value("{\"card\": \"4111111111111111\", \"n\": 4}".getBytes(StandardCharsets.UTF_8)).send();
                    System.out.println("topic " + topic + " " + refused + " " + millis + " "
                            + Base64.getEncoder().encodeToString(message.getBytes(StandardCharsets.UTF_8)));
                }
            }
        }
    }

    private static void consume(PulsarClient client, String topic, int n) throws Exception {
        try (Consumer<byte[]> consumer = client.newConsumer().topic(topic).subscriptionName("java-reader")
                .subscriptionInitialPosition(SubscriptionInitialPosition.Earliest).subscribe()) {
            for (int i = 0; i < n; i++) {
                Message<byte[]> msg = consumer.receive(10, TimeUnit.SECONDS);
                if (msg == null) {
                    throw new IllegalStateException("no message " + i + " within 10 s");
                }
                System.out.println("value " + msg.getKey() + " " + Base64.getEncoder().encodeToString(msg.getValue()));
                consumer.acknowledge(msg);
            }
        }
    }
}
