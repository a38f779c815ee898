// The Pulsar Java client (pulsar-client-original) as a test program: one JSON object per line
// on stdout for each thing that happened, so a Python test can assert on it.
//
//   java -cp <pulsar jars>:<classes> PulsarJavaClient <service-url> <token|-> <mode> <topic> <subscription> <count>
//
// mode: "produce-consume" subscribes (earliest), produces <count> messages "java-<i>", then
// receives <count>; "produce" only creates a producer and sends; "subscribe" only subscribes.
// Lines: {"event":"producer","remote":"host:port"} / {"event":"consumer","remote":...} (the address
// the client's connection for it goes to), {"event":"sent","count":n},
// {"event":"received","values":[...]}, {"event":"error","phase":...,"type":<exception class>,
// "message":...,"elapsed_ms":n}, and last {"event":"done"}. Exit status 0 even on an error line:
// the test decides what an error means.
//
// Compiled by harness/pulsar_java.py with the machine's javac into a cache directory.

import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.apache.pulsar.client.api.AuthenticationFactory;
import org.apache.pulsar.client.api.Consumer;
import org.apache.pulsar.client.api.Message;
import org.apache.pulsar.client.api.Producer;
import org.apache.pulsar.client.api.PulsarClient;
import org.apache.pulsar.client.api.ClientBuilder;
import org.apache.pulsar.client.api.SubscriptionInitialPosition;
import org.apache.pulsar.client.impl.ConsumerImpl;
import org.apache.pulsar.client.impl.ProducerImpl;
import org.apache.pulsar.client.impl.ClientCnx;

public final class PulsarJavaClient {
    public static void main(String[] args) throws Exception {
        if (args.length != 6) {
            System.err.println("usage: PulsarJavaClient <service-url> <token|-> <mode> <topic> <subscription> <count>");
            System.exit(2);
        }
        String url = args[0], token = args[1], mode = args[2], topic = args[3], subscription = args[4];
        int count = Integer.parseInt(args[5]);
        ClientBuilder builder = PulsarClient.builder().serviceUrl(url)
                .operationTimeout(10, TimeUnit.SECONDS).connectionTimeout(5, TimeUnit.SECONDS)
                .ioThreads(1).listenerThreads(1);
        if (!token.equals("-")) {
            builder.authentication(AuthenticationFactory.token(token));
        }
        PulsarClient client = builder.build();
        try {
            run(client, mode, topic, subscription, count);
        } finally {
            try {
                client.close();
            } catch (Exception e) {
                error("close", e, 0);
            }
            line("{\"event\":\"done\"}");
        }
    }

    private static void run(PulsarClient client, String mode, String topic, String subscription, int count) {
        Consumer<byte[]> consumer = null;
        if (mode.equals("produce-consume") || mode.equals("subscribe")) {
            long began = System.nanoTime();
            try {
                consumer = client.newConsumer().topic(topic).subscriptionName(subscription)
                        .subscriptionInitialPosition(SubscriptionInitialPosition.Earliest).subscribe();
            } catch (Exception e) {
                error("subscribe", e, began);
                return;
            }
            line("{\"event\":\"consumer\",\"remote\":" + quote(remote(((ConsumerImpl<?>) consumer).getClientCnx())) + "}");
            if (mode.equals("subscribe")) {
                return;
            }
        }
        long began = System.nanoTime();
        Producer<byte[]> producer;
        try {
            producer = client.newProducer().topic(topic).enableBatching(true).create();
        } catch (Exception e) {
            error("producer", e, began);
            return;
        }
        line("{\"event\":\"producer\",\"remote\":" + quote(remote(((ProducerImpl<?>) producer).getClientCnx())) + "}");
        try {
            for (int i = 0; i < count; i++) {
                producer.sendAsync(("java-" + i).getBytes(java.nio.charset.StandardCharsets.UTF_8));
            }
            producer.flush();
            line("{\"event\":\"sent\",\"count\":" + count + "}");
        } catch (Exception e) {
            error("send", e, began);
            return;
        }
        if (consumer == null) {
            return;
        }
        List<String> values = new ArrayList<>();
        try {
            for (int i = 0; i < count; i++) {
                Message<byte[]> msg = consumer.receive(10, TimeUnit.SECONDS);
                if (msg == null) {
                    break;
                }
                values.add(new String(msg.getData(), java.nio.charset.StandardCharsets.UTF_8));
                consumer.acknowledge(msg);
            }
        } catch (Exception e) {
            error("receive", e, began);
        }
        StringBuilder out = new StringBuilder("{\"event\":\"received\",\"values\":[");
        for (int i = 0; i < values.size(); i++) {
            out.append(i == 0 ? "" : ",").append(quote(values.get(i)));
        }
        line(out.append("]}").toString());
    }

    private static String remote(ClientCnx cnx) {
        if (cnx == null) {
            return "";
        }
        SocketAddress address = cnx.ctx().channel().remoteAddress();
        if (address instanceof InetSocketAddress inet && inet.getAddress() != null) {
            return inet.getAddress().getHostAddress() + ":" + inet.getPort();
        }
        return address == null ? "" : address.toString();
    }

    private static void error(String phase, Throwable e, long began) {
        Throwable cause = e;
        // The client wraps some failures (CompletionException, ExecutionException): report the cause.
        while ((cause instanceof java.util.concurrent.CompletionException
                || cause instanceof java.util.concurrent.ExecutionException) && cause.getCause() != null) {
            cause = cause.getCause();
        }
        long elapsed = began == 0 ? 0 : (System.nanoTime() - began) / 1_000_000;
        line("{\"event\":\"error\",\"phase\":" + quote(phase) + ",\"type\":" + quote(cause.getClass().getName())
                + ",\"message\":" + quote(String.valueOf(cause.getMessage())) + ",\"elapsed_ms\":" + elapsed + "}");
    }

    private static synchronized void line(String json) {
        System.out.println(json);
        System.out.flush();
    }

    private static String quote(String s) {
        StringBuilder out = new StringBuilder("\"");
        for (char ch : s.toCharArray()) {
            switch (ch) {
                case '"': out.append("\\\""); break;
                case '\\': out.append("\\\\"); break;
                case '\n': out.append("\\n"); break;
                case '\r': out.append("\\r"); break;
                case '\t': out.append("\\t"); break;
                default:
                    if (ch < 0x20) {
                        out.append(String.format("\\u%04x", (int) ch));
                    } else {
                        out.append(ch);
                    }
            }
        }
        return out.append('"').toString();
    }
}
