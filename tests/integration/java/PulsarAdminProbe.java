import java.util.List;
import java.util.concurrent.TimeUnit;

import org.apache.pulsar.client.admin.PulsarAdmin;
import org.apache.pulsar.client.admin.PulsarAdminException;
import org.apache.pulsar.client.api.AuthenticationFactory;

/**
 * Pulsar's own Java admin client (PulsarAdmin) against an admin URL, for the Pulsar admin REST
 * tests: args are the URL, a token, then steps "create:TOPIC", "delete:TOPIC", "list:NAMESPACE".
 * Prints one JSON object per step: {"step", "ok", "status", "message", "topics"}.
 */
public class PulsarAdminProbe {
    public static void main(String[] args) throws Exception {
        try (PulsarAdmin admin = PulsarAdmin.builder()
                .serviceHttpUrl(args[0])
                .authentication(AuthenticationFactory.token(args[1]))
                .connectionTimeout(10, TimeUnit.SECONDS)
                .requestTimeout(30, TimeUnit.SECONDS)
                .build()) {
            for (int i = 2; i < args.length; i++) {
                String step = args[i];
                String what = step.substring(0, step.indexOf(':'));
                String name = step.substring(step.indexOf(':') + 1);
                StringBuilder out = new StringBuilder("{\"step\": ").append(quote(step));
                try {
                    switch (what) {
                        case "create" -> admin.topics().createNonPartitionedTopic(name);
                        case "delete" -> admin.topics().delete(name);
                        case "list" -> {
                            List<String> topics = admin.topics().getList(name);
                            out.append(", \"topics\": [");
                            for (int j = 0; j < topics.size(); j++) {
                                out.append(j == 0 ? "" : ", ").append(quote(topics.get(j)));
                            }
                            out.append("]");
                        }
                        default -> throw new IllegalArgumentException(step);
                    }
                    out.append(", \"ok\": true");
                } catch (PulsarAdminException e) {
                    out.append(", \"ok\": false, \"status\": ").append(e.getStatusCode())
                       .append(", \"exception\": ").append(quote(e.getClass().getSimpleName()))
                       .append(", \"message\": ").append(quote(String.valueOf(e.getMessage())));
                }
                System.out.println(out.append("}"));
            }
        }
    }

    private static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.append('"').toString();
    }
}
