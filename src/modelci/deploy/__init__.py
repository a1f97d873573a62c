"""Deploy targets behind one interface, the release smoke test, and the AWS Lambda adapter."""
