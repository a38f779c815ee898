from twisted.application.service import ServiceMaker

gatekeeper = ServiceMaker(
    "Gatekeeper", "gatekeeper.tap", "A Layer-7 policy gateway for Apache Kafka.", "gatekeeper"
)
