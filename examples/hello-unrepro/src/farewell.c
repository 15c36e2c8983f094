const char *farewell(void)
{
	return "Goodbye!";
}
