const char *weather(void)
{
	return "It is sunny.";
}
